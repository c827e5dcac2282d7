package ai.longrwkv.core.backend.cuda;

import ai.longrwkv.core.backend.Tensor;
import ai.longrwkv.core.backend.cuda.Device.NcclComm;
import ai.longrwkv.core.backend.cuda.Device.NcclType;
import ai.longrwkv.core.dist.CollectiveException;
import ai.longrwkv.core.dist.Communicator;
import ai.longrwkv.core.dist.DeferredCalls;
import ai.longrwkv.core.tensor.DType;
import org.bytedeco.javacpp.DoublePointer;

/**
 * The {@link Communicator} of a {@link CudaBackend}: each call checks its tensors (CUDA tensors of this backend, row
 * views allowed, the dtypes the interface allows, the sizes that fit) and issues one NCCL call on the device's
 * communicator, in place where NCCL allows it. On a GPU the call is queued in stream order with the compute (a later
 * kernel, download or synchronize sees its result); on the emulated device it has completed when the call returns.
 * Use it from one thread, the thread that drives this rank's backend.
 */
final class NcclCommunicator implements Communicator {
    private final CudaBackend backend;
    private final NcclComm comm;
    private boolean closed;
    /** The reason given to {@link #abort}, or null. */
    private String aborted;
    /** Queued calls of a device that cannot run them on a stream of their own (the emulated device): run when awaited. */
    private final DeferredCalls deferred = new DeferredCalls();

    NcclCommunicator(CudaBackend backend, NcclComm comm) {
        this.backend = backend;
        this.comm = comm;
    }

    @Override public int rank() { return comm.rank(); }
    @Override public int size() { return comm.size(); }

    /** t as a CUDA tensor of this backend in one of the allowed dtypes, else one clear line naming the call. */
    private CudaTensor tensor(Tensor t, String op, String role, boolean bf16Allowed) {
        checkOpen(op);
        if (!(t instanceof CudaTensor c)) {
            throw new IllegalArgumentException(op + ": " + role + " " + t.describe() + " is not a CUDA tensor (each rank's tensors live on its own CUDA backend)");
        }
        if (c.owner() != backend) {
            throw new IllegalArgumentException(op + ": " + role + " " + t.describe() + " belongs to another backend than this rank's communicator");
        }
        if (c.dtype() != DType.F32 && !(bf16Allowed && c.dtype() == DType.BF16)) {
            throw new IllegalArgumentException(op + " takes " + (bf16Allowed ? "fp32 or bf16" : "fp32") + " tensors, got " + role + " " + t.describe());
        }
        return c;
    }

    private void checkOpen(String op) {
        if (aborted != null) throw new CollectiveException("rank " + rank() + ": " + op + " after this rank aborted the group: " + aborted);
        if (closed) throw new IllegalStateException("rank " + rank() + ": " + op + " on a closed communicator");
    }

    private static void checkRoot(int root, int size, String op) {
        if (root < 0 || root >= size) throw new IllegalArgumentException(op + ": root " + root + " is outside 0.." + (size - 1));
    }

    @Override
    public void allReduceSum(Tensor t) {
        CudaTensor c = tensor(t, "allReduceSum", "tensor", false);
        flushQueued();
        comm.allReduce(c.ptr(), c.ptr(), c.size(), NcclType.F32);
    }

    @Override
    public void reduceSum(Tensor t, int root) {
        CudaTensor c = tensor(t, "reduceSum", "tensor", false);
        checkRoot(root, size(), "reduceSum");
        flushQueued();
        comm.reduce(c.ptr(), c.ptr(), c.size(), NcclType.F32, root);
    }

    @Override
    public Queued allReduceSumQueued(Tensor t) {
        CudaTensor c = tensor(t, "allReduceSumQueued", "tensor", false);
        if (comm.queues()) return comm.allReduceQueued(c.ptr(), c.ptr(), c.size(), NcclType.F32);
        return deferred.add(() -> comm.allReduce(c.ptr(), c.ptr(), c.size(), NcclType.F32));
    }

    @Override
    public Queued reduceSumQueued(Tensor t, int root) {
        CudaTensor c = tensor(t, "reduceSumQueued", "tensor", false);
        checkRoot(root, size(), "reduceSumQueued");
        if (comm.queues()) return comm.reduceQueued(c.ptr(), c.ptr(), c.size(), NcclType.F32, root);
        return deferred.add(() -> comm.reduce(c.ptr(), c.ptr(), c.size(), NcclType.F32, root));
    }

    @Override
    public void await(Queued q) {
        checkOpen("await");
        if (comm.queues()) comm.await(q);
        else deferred.runThrough(q);
    }

    /** Before a call that is not queued: the queued ones first, so that every rank sees the calls in the order made. */
    private void flushQueued() {
        if (comm.queues()) comm.awaitAll();
        else deferred.runAll();
    }

    @Override
    public void broadcast(Tensor t, int root) {
        CudaTensor c = tensor(t, "broadcast", "tensor", true);
        checkRoot(root, size(), "broadcast");
        flushQueued();
        comm.broadcast(c.ptr(), c.ptr(), c.size(), NcclType.of(c.dtype()), root);
    }

    @Override
    public void allGather(Tensor in, Tensor out) {
        CudaTensor i = tensor(in, "allGather", "in", true), o = tensor(out, "allGather", "out", true);
        if (i.dtype() != o.dtype()) throw new IllegalArgumentException("allGather: in " + in.describe() + " and out " + out.describe() + " differ in dtype");
        if (o.size() != (long) size() * i.size()) {
            throw new IllegalArgumentException("allGather: out " + out.describe() + " must hold " + size() + " x " + i.size() + " = "
                    + (long) size() * i.size() + " values (" + size() + " ranks), has " + o.size());
        }
        flushQueued();
        comm.allGather(i.ptr(), o.ptr(), i.size(), NcclType.of(i.dtype()));
    }

    @Override
    public void reduceScatterSum(Tensor in, Tensor out) {
        CudaTensor i = tensor(in, "reduceScatterSum", "in", false), o = tensor(out, "reduceScatterSum", "out", false);
        if (i.size() != (long) size() * o.size()) {
            throw new IllegalArgumentException("reduceScatterSum: in " + in.describe() + " must hold " + size() + " x " + o.size() + " = "
                    + (long) size() * o.size() + " values (" + size() + " ranks x out's size), has " + i.size());
        }
        flushQueued();
        comm.reduceScatter(i.ptr(), o.ptr(), o.size(), NcclType.F32);
    }

    /** Through a device buffer of doubles (ncclFloat64): the download waits for the sum. */
    @Override
    public double[] allReduceSum(double[] values) {
        checkOpen("allReduceSum");
        int n = values.length;
        long bytes = Math.max(8L, n * 8L);
        long buf = backend.memory.alloc(bytes);
        try (DoublePointer h = new DoublePointer(Math.max(1, n))) {
            if (n > 0) {
                h.put(values);
                backend.device.copyHtoD(buf, h, n * 8L);
            }
            flushQueued();
            comm.allReduce(buf, buf, n, NcclType.F64);
            double[] out = new double[n];
            if (n > 0) {
                backend.device.copyDtoH(h, buf, n * 8L);
                h.get(out);
            }
            return out;
        } finally {
            backend.memory.free(buf, bytes);
        }
    }

    /** An allReduce of one value, then a synchronize: on a GPU the queued collective has then completed everywhere. */
    @Override
    public void barrier() {
        allReduceSum(new double[]{1});
        backend.device.synchronize("barrier");
    }

    @Override
    public void abort(String reason) {
        if (closed) return;
        closed = true;
        aborted = reason;
        deferred.clear();
        comm.abort(reason);
    }

    @Override
    public void close() {
        if (closed) return;
        closed = true;
        deferred.clear();   // an unawaited queued call at close: the run failed before it was needed
        comm.close();
    }

    @Override
    public String toString() { return "NcclCommunicator(rank " + rank() + " of " + size() + ")"; }
}
