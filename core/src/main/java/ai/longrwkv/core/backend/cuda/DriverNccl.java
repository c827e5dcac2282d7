package ai.longrwkv.core.backend.cuda;

import ai.longrwkv.core.backend.cuda.Device.NcclComm;
import ai.longrwkv.core.backend.cuda.Device.NcclType;
import ai.longrwkv.core.dist.CollectiveException;
import org.bytedeco.cuda.cudart.CUevent_st;
import org.bytedeco.cuda.cudart.CUstream_st;
import org.bytedeco.cuda.nccl.ncclComm;
import org.bytedeco.cuda.nccl.ncclUniqueId;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.Loader;
import org.bytedeco.javacpp.Pointer;

import java.util.ArrayDeque;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

import static org.bytedeco.cuda.global.cudart.*;
import static org.bytedeco.cuda.global.nccl.*;

/**
 * Real NCCL through bytedeco's {@code org.bytedeco.cuda.global.nccl} (NCCL 2.29 headers), for {@link DriverDevice}.
 * Its JNI library links libnccl.so.2, which no jar ships: the first use loads it, and a machine without it gets one
 * line saying how to install it (and the same line on every later attempt: a failed native load leaves the class
 * unusable for the rest of the process).
 *
 * <p>Communicators are blocking (NCCL's default): ncclCommInitRank returns when every rank has joined, each
 * collective returns once it is queued. All collectives go to the legacy default stream, the stream every kernel,
 * copy and GEMM of the device uses, so they run in call order with the compute and need no events for correctness
 * (a stream of their own would let them overlap the backward, but only with events that the trainer would have to
 * wait on; not done). Timeouts: ncclCommInitRank runs on a helper thread and the caller gives up after the timeout
 * (NCCL has no timeout of its own; the helper stays blocked until the process exits). Every collective records an
 * event after itself; a watchdog thread checks the oldest outstanding one, and when it has not completed within the
 * timeout (a peer died or is stuck: the NCCL kernel spins forever) it aborts the communicator (ncclCommAbort makes
 * the stuck kernels return) and every later call fails with the reason.
 *
 * <p>Unverified: written from the NCCL documentation and compiled here; the development machines have no GPU and no
 * libnccl. The GPU test (NcclGpuTest, in scripts/gpu-check.sh) exercises every call on one rank.
 */
final class DriverNccl {
    private DriverNccl() { }

    static final String MISSING_LIBRARY = "libnccl.so.2 not found: install NCCL (a CUDA install, the distribution's libnccl2 package, "
            + "or pip install nvidia-nccl-cu13) and make it visible on LD_LIBRARY_PATH";

    private static volatile boolean loaded;
    private static volatile String loadFailure;

    /** Loads the NCCL JNI library once; throws {@link IllegalArgumentException} with one line when it cannot. */
    static synchronized void load() {
        if (loaded) return;
        if (loadFailure != null) throw new IllegalArgumentException(loadFailure);
        try {
            Loader.load(org.bytedeco.cuda.global.nccl.class);
            int[] version = new int[1];
            check(ncclGetVersion(version), "ncclGetVersion");
            loaded = true;
        } catch (Throwable e) {   // UnsatisfiedLinkError, then NoClassDefFoundError on any later touch
            loadFailure = explainLoadFailure(e);
            throw new IllegalArgumentException(loadFailure);
        }
    }

    /**
     * One line for a failed load. What JavaCPP throws when the library is missing (seen with a stand-in libcuda.so.1
     * and no libnccl): UnsatisfiedLinkError "no jninccl in java.library.path: ..." caused by UnsatisfiedLinkError
     * ".../libjninccl.so: libnccl.so.2: cannot open shared object file: No such file or directory".
     */
    static String explainLoadFailure(Throwable e) {
        StringBuilder chain = new StringBuilder();
        for (Throwable t = e; t != null; t = t.getCause() == t ? null : t.getCause()) chain.append(' ').append(t.getMessage());
        String all = chain.toString();
        if (all.contains("libnccl.so")) return MISSING_LIBRARY;
        if (all.contains("libcuda.so")) return "NCCL needs the NVIDIA driver (libcuda.so.1 not found)";
        if (all.contains("jninccl")) return MISSING_LIBRARY + " (" + firstLine(all.trim()) + ")";
        return "NCCL could not be loaded: " + firstLine(all.trim());
    }

    private static String firstLine(String s) {
        int nl = s.indexOf('\n');
        return nl < 0 ? s : s.substring(0, nl);
    }

    static String errorString(int status) {
        try {
            BytePointer p = ncclGetErrorString(status);
            String text = p == null ? null : p.getString();
            String last = null;
            try {
                BytePointer l = ncclGetLastError(null);
                last = l == null ? null : l.getString();
            } catch (RuntimeException | LinkageError ignored) {
                // older libraries
            }
            return "NCCL error " + status + (text == null ? "" : " (" + text + ")") + (last == null || last.isEmpty() ? "" : ": " + last);
        } catch (RuntimeException | LinkageError e) {
            return "NCCL error " + status;
        }
    }

    static void check(int status, String what) {
        if (status != ncclSuccess) throw new CollectiveException(what + " failed: " + errorString(status) + " (NCCL_DEBUG=INFO shows more)");
    }

    static int ncclType(NcclType t) {
        return switch (t) {
            case F32 -> ncclFloat32;
            case BF16 -> ncclBfloat16;
            case F64 -> ncclFloat64;
        };
    }

    /** ncclGetUniqueId as 128 bytes. */
    static byte[] uniqueId() {
        load();
        try (ncclUniqueId id = new ncclUniqueId()) {
            check(ncclGetUniqueId(id), "ncclGetUniqueId");
            byte[] out = new byte[Device.NCCL_UNIQUE_ID_BYTES];
            id.internal().get(out);
            return out;
        }
    }

    /** ncclCommInitRank on {@code device}'s context, on a helper thread, waiting at most {@code timeoutMillis}. */
    static NcclComm initRank(DriverDevice device, byte[] id, int rank, int nranks, long timeoutMillis) {
        load();
        if (id == null || id.length != Device.NCCL_UNIQUE_ID_BYTES) {
            throw new IllegalArgumentException("an NCCL id has " + Device.NCCL_UNIQUE_ID_BYTES + " bytes, got " + (id == null ? "none" : id.length));
        }
        if (nranks < 1 || rank < 0 || rank >= nranks) throw new IllegalArgumentException("rank " + rank + " of " + nranks + " ranks");
        if (timeoutMillis <= 0) throw new IllegalArgumentException("the collective timeout must be positive, got " + timeoutMillis + " ms");
        CompletableFuture<ncclComm> result = new CompletableFuture<>();
        Thread t = new Thread(() -> {
            try {
                device.bindContext();   // NCCL takes the device of the current context
                ncclUniqueId uid = new ncclUniqueId();
                uid.internal().put(id);
                ncclComm comm = new ncclComm();
                int st = ncclCommInitRank(comm, nranks, uid, rank);
                if (st != ncclSuccess) {
                    result.completeExceptionally(new CollectiveException("rank " + rank + ": ncclCommInitRank failed: " + errorString(st)
                            + " (check the other ranks' output; NCCL_DEBUG=INFO shows more)"));
                } else {
                    result.complete(comm);
                }
            } catch (Throwable e) {
                result.completeExceptionally(e);
            }
        }, "nccl-init-rank-" + rank);
        t.setDaemon(true);
        t.start();
        try {
            return new Comm(device, result.get(timeoutMillis, TimeUnit.MILLISECONDS), rank, nranks, timeoutMillis);
        } catch (TimeoutException e) {
            throw new CollectiveException("rank " + rank + ": NCCL communicator init did not complete in " + EmulatedNccl.seconds(timeoutMillis)
                    + " (is every rank started, with the same id? check the other ranks' output; NCCL_DEBUG=INFO shows more)");
        } catch (ExecutionException e) {
            if (e.getCause() instanceof RuntimeException r) throw r;
            throw new CollectiveException("rank " + rank + ": ncclCommInitRank failed: " + e.getCause(), e.getCause());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new CollectiveException("rank " + rank + ": interrupted during NCCL communicator init");
        }
    }

    /** A JavaCPP pointer object holding a device address, for NCCL's void* buffers. */
    private static final class DeviceAddress extends Pointer {
        DeviceAddress(long address) {
            super();
            this.address = address;
        }
    }

    /**
     * One rank's communicator, with a watchdog: its plain collectives on the legacy default stream, in order with every
     * kernel; its queued ones on a non-blocking stream of their own, started after the compute queued before them and
     * awaited by the compute stream through events (the trainer's bucketed gradient reduction, overlapping the backward).
     * A plain collective first makes the compute stream wait for every queued one, so the order of calls is kept.
     */
    private static final class Comm implements NcclComm {
        private final DriverDevice device;
        private final ncclComm comm;
        private final int rank, size;
        private final long timeoutMillis;
        /** Events recorded after each collective, oldest first, with the time they were queued and what they were. */
        private final ArrayDeque<Pending> pending = new ArrayDeque<>();
        private final Thread watchdog;
        private volatile String failure;
        private long seq;
        private boolean closed;

        private record Pending(CUevent_st event, long queuedNanos, String what) { }

        /**
         * The stream queued collectives run on: non-blocking, so the legacy default stream (every kernel's) neither
         * waits for it nor it for the default stream, except through the events below. Made on first use.
         */
        private CUstream_st commStream;
        /** The events after the queued collectives the compute stream has not waited for yet, oldest first. */
        private final ArrayDeque<Ticket> unawaited = new ArrayDeque<>();

        /** A queued collective's ticket: the event recorded on the communication stream after it. */
        private record Ticket(CUevent_st done) implements ai.longrwkv.core.dist.Communicator.Queued { }

        Comm(DriverDevice device, ncclComm comm, int rank, int size, long timeoutMillis) {
            this.device = device;
            this.comm = comm;
            this.rank = rank;
            this.size = size;
            this.timeoutMillis = timeoutMillis;
            watchdog = new Thread(this::watch, "nccl-watchdog-rank-" + rank);
            watchdog.setDaemon(true);
            watchdog.start();
        }

        @Override public int rank() { return rank; }
        @Override public int size() { return size; }

        private synchronized String begin(String op, NcclType type, long count) {
            if (closed) throw new IllegalStateException("rank " + rank + ": " + op + " on a closed NCCL communicator");
            if (failure != null) throw new CollectiveException("rank " + rank + ": " + op + ": " + failure);
            device.bindContext();
            return op + " #" + (++seq) + " (" + type.label + ", " + count + " values)";
        }

        /** After a call was queued: its status, then an event the watchdog follows. */
        private synchronized void queued(int status, String what) {
            if (status != ncclSuccess) {
                String msg = "rank " + rank + ": " + what + " failed: " + errorString(status) + " (check the other ranks' output; NCCL_DEBUG=INFO shows more)";
                failure = msg;
                throw new CollectiveException(msg);
            }
            CUevent_st ev = new CUevent_st();
            DriverDevice.check(cuEventCreate(ev, CU_EVENT_DISABLE_TIMING), "cuEventCreate");
            DriverDevice.check(cuEventRecord(ev, (CUstream_st) null), "cuEventRecord");
            pending.addLast(new Pending(ev, System.nanoTime(), what));
            notifyAll();
        }

        @Override public boolean queues() { return true; }

        /** The communication stream starts the next queued call once the compute queued so far (the buffers' writers) is done. */
        private CUstream_st afterCompute() {
            if (commStream == null) {
                CUstream_st st = new CUstream_st();
                DriverDevice.check(cuStreamCreate(st, CU_STREAM_NON_BLOCKING), "cuStreamCreate");
                commStream = st;
            }
            CUevent_st ev = new CUevent_st();
            DriverDevice.check(cuEventCreate(ev, CU_EVENT_DISABLE_TIMING), "cuEventCreate");
            DriverDevice.check(cuEventRecord(ev, (CUstream_st) null), "cuEventRecord");
            DriverDevice.check(cuStreamWaitEvent(commStream, ev, 0), "cuStreamWaitEvent");
            cuEventDestroy(ev);   // released once the wait has happened
            return commStream;
        }

        /** After a queued call: its status, the watchdog's event, and the ticket (an event of its own). */
        private synchronized ai.longrwkv.core.dist.Communicator.Queued queuedOnStream(int status, String what) {
            if (status != ncclSuccess) {
                String msg = "rank " + rank + ": " + what + " failed: " + errorString(status) + " (check the other ranks' output; NCCL_DEBUG=INFO shows more)";
                failure = msg;
                throw new CollectiveException(msg);
            }
            CUevent_st watched = new CUevent_st(), done = new CUevent_st();
            DriverDevice.check(cuEventCreate(watched, CU_EVENT_DISABLE_TIMING), "cuEventCreate");
            DriverDevice.check(cuEventRecord(watched, commStream), "cuEventRecord");
            pending.addLast(new Pending(watched, System.nanoTime(), what));
            DriverDevice.check(cuEventCreate(done, CU_EVENT_DISABLE_TIMING), "cuEventCreate");
            DriverDevice.check(cuEventRecord(done, commStream), "cuEventRecord");
            Ticket t = new Ticket(done);
            unawaited.addLast(t);
            notifyAll();
            return t;
        }

        @Override
        public ai.longrwkv.core.dist.Communicator.Queued allReduceQueued(long send, long recv, long count, NcclType type) {
            String what = begin("allReduce (queued)", type, count);
            CUstream_st st = afterCompute();
            return queuedOnStream(ncclAllReduce(new DeviceAddress(send), new DeviceAddress(recv), count, ncclType(type), ncclSum, comm, st), what);
        }

        @Override
        public ai.longrwkv.core.dist.Communicator.Queued reduceQueued(long send, long recv, long count, NcclType type, int root) {
            String what = begin("reduce (queued)", type, count);
            CUstream_st st = afterCompute();
            return queuedOnStream(ncclReduce(new DeviceAddress(send), new DeviceAddress(recv), count, ncclType(type), ncclSum, root, comm, st), what);
        }

        /**
         * The compute stream waits for the ticket's event (the stream is in order: the calls before it are done too);
         * the calls queued after it keep running next to the compute. Events already waited for are released.
         */
        @Override
        public synchronized void await(ai.longrwkv.core.dist.Communicator.Queued q) {
            if (!(q instanceof Ticket t) || !unawaited.contains(t)) return;
            device.bindContext();
            DriverDevice.check(cuStreamWaitEvent((CUstream_st) null, t.done(), 0), "cuStreamWaitEvent");
            while (!unawaited.isEmpty()) {
                Ticket old = unawaited.pollFirst();
                cuEventDestroy(old.done());   // a recorded event may be destroyed while a wait on it is pending
                if (old == t) break;
            }
        }

        @Override
        public synchronized void awaitAll() {
            if (!unawaited.isEmpty()) await(unawaited.peekLast());
        }

        @Override
        public void allReduce(long send, long recv, long count, NcclType type) {
            awaitAll();
            String what = begin("allReduce", type, count);
            queued(ncclAllReduce(new DeviceAddress(send), new DeviceAddress(recv), count, ncclType(type), ncclSum, comm, (CUstream_st) null), what);
        }

        @Override
        public void reduce(long send, long recv, long count, NcclType type, int root) {
            awaitAll();
            String what = begin("reduce", type, count);
            queued(ncclReduce(new DeviceAddress(send), new DeviceAddress(recv), count, ncclType(type), ncclSum, root, comm, (CUstream_st) null), what);
        }

        @Override
        public void broadcast(long send, long recv, long count, NcclType type, int root) {
            awaitAll();
            String what = begin("broadcast", type, count);
            queued(ncclBroadcast(new DeviceAddress(send), new DeviceAddress(recv), count, ncclType(type), root, comm, (CUstream_st) null), what);
        }

        @Override
        public void allGather(long send, long recv, long sendCount, NcclType type) {
            awaitAll();
            String what = begin("allGather", type, sendCount);
            queued(ncclAllGather(new DeviceAddress(send), new DeviceAddress(recv), sendCount, ncclType(type), comm, (CUstream_st) null), what);
        }

        @Override
        public void reduceScatter(long send, long recv, long recvCount, NcclType type) {
            awaitAll();
            String what = begin("reduceScatter", type, recvCount);
            queued(ncclReduceScatter(new DeviceAddress(send), new DeviceAddress(recv), recvCount, ncclType(type), ncclSum, comm, (CUstream_st) null), what);
        }

        /** The watchdog: frees completed events; aborts the communicator when the oldest one is overdue. */
        private void watch() {
            try {
                device.bindContext();
                while (true) {
                    Pending p;
                    synchronized (this) {
                        while (pending.isEmpty() && !closed) wait(1000);
                        if (closed) return;
                        p = pending.peekFirst();
                    }
                    int st = cuEventQuery(p.event);
                    if (st == CUDA_SUCCESS) {
                        synchronized (this) {
                            pending.pollFirst();
                            cuEventDestroy(p.event);
                        }
                        continue;
                    }
                    String async = asyncError();
                    boolean overdue = System.nanoTime() - p.queuedNanos > timeoutMillis * 1_000_000L;
                    if (st != CUDA_ERROR_NOT_READY || async != null || overdue) {
                        String why = st != CUDA_ERROR_NOT_READY ? "the device reported " + DriverDevice.errorName(st)
                                : async != null ? async
                                : "it did not complete in " + EmulatedNccl.seconds(timeoutMillis) + " (a rank died or is stuck: check the other ranks' output)";
                        failure = p.what + " failed: " + why;
                        System.err.println("rank " + rank + ": " + failure + "; aborting the NCCL communicator");
                        synchronized (this) {
                            if (!closed) {
                                closed = true;
                                ncclCommAbort(comm);
                            }
                        }
                        return;
                    }
                    Thread.sleep(20);
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            } catch (RuntimeException | LinkageError e) {
                failure = "the NCCL watchdog failed: " + e.getMessage();
            }
        }

        @Override
        public String asyncError() {
            int[] err = new int[1];
            int st = ncclCommGetAsyncError(comm, err);
            if (st != ncclSuccess) return "ncclCommGetAsyncError failed: " + errorString(st);
            return err[0] == ncclSuccess || err[0] == ncclInProgress ? failure : errorString(err[0]);
        }

        @Override
        public void abort(String reason) {
            synchronized (this) {
                if (failure == null) failure = "rank " + rank + " failed: " + reason;
                if (closed) return;
                closed = true;
                device.bindContext();
                ncclCommAbort(comm);
                notifyAll();
            }
        }

        @Override
        public void close() {
            synchronized (this) {
                if (closed) return;
            }
            device.bindContext();
            // waits for the queued collectives with the watchdog still running: if a peer is gone it aborts them
            int sync = cuCtxSynchronize();
            synchronized (this) {
                if (closed) return;   // the watchdog aborted the communicator (ncclCommAbort freed it)
                closed = true;
                notifyAll();
            }
            try {
                watchdog.join();   // it queries the events destroyed below
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            for (Pending p : pending) cuEventDestroy(p.event);
            pending.clear();
            for (Ticket t : unawaited) cuEventDestroy(t.done());
            unawaited.clear();
            if (commStream != null) cuStreamDestroy(commStream);
            DriverDevice.check(sync, "cuCtxSynchronize before ncclCommDestroy");
            check(ncclCommDestroy(comm), "ncclCommDestroy");
        }
    }
}
