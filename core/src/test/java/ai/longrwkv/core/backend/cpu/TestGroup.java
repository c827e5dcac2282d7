package ai.longrwkv.core.backend.cpu;

import ai.longrwkv.core.backend.Backend;
import ai.longrwkv.core.backend.Tensor;
import ai.longrwkv.core.dist.CollectiveException;
import ai.longrwkv.core.dist.Communicator;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.BrokenBarrierException;
import java.util.concurrent.Callable;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * For tests of the trainer's data-parallel logic on the CPU backend: W ranks as threads of one test, collectives on
 * host copies with NCCL's semantics, sums in rank order (acc = rank 0's values; acc += rank 1's; ...) in fp32 (fp64 for
 * the host vectors), as the emulated device's NCCL computes them. Not a product path: the CPU backend has no
 * communicator (the GPU path's emulation is tested with the emulated device).
 */
public final class TestGroup {
    private final int size;
    private final CyclicBarrier barrier;
    private final Object[] slots;
    private volatile String aborted;

    public TestGroup(int size) {
        this.size = size;
        this.barrier = new CyclicBarrier(size);
        this.slots = new Object[size];
    }

    public Communicator rank(int rank, Backend be) {
        return new Rank(rank, be);
    }

    /** Runs body(rank) on W threads and returns their results in rank order; the first failure is rethrown. */
    public static <T> List<T> run(int size, java.util.function.IntFunction<T> body) {
        ExecutorService pool = Executors.newFixedThreadPool(size);
        try {
            List<Future<T>> fs = new ArrayList<>();
            for (int r = 0; r < size; r++) {
                int rank = r;
                fs.add(pool.submit((Callable<T>) () -> body.apply(rank)));
            }
            List<T> out = new ArrayList<>();
            for (Future<T> f : fs) out.add(f.get(10, TimeUnit.MINUTES));
            return out;
        } catch (java.util.concurrent.ExecutionException e) {
            if (e.getCause() instanceof RuntimeException r) throw r;
            if (e.getCause() instanceof Error err) throw err;
            throw new IllegalStateException(e.getCause());
        } catch (InterruptedException | TimeoutException e) {
            throw new IllegalStateException(e);
        } finally {
            pool.shutdownNow();
        }
    }

    private void await() {
        try {
            barrier.await(60, TimeUnit.SECONDS);
        } catch (InterruptedException | BrokenBarrierException | TimeoutException e) {
            throw new CollectiveException("test group broken" + (aborted != null ? ": " + aborted : ""), e);
        }
    }

    /** Every rank deposits its value, then each reads all of them; a second barrier before the slots are reused. */
    private Object[] exchange(int rank, Object mine) {
        if (aborted != null) throw new CollectiveException(aborted);
        slots[rank] = mine;
        await();
        Object[] all = slots.clone();
        await();
        return all;
    }

    private final class Rank implements Communicator {
        private final int rank;
        private final Backend be;
        /** Queued calls run when awaited, reading their buffers then: a trainer that touches one too early is caught. */
        private final ai.longrwkv.core.dist.DeferredCalls deferred = new ai.longrwkv.core.dist.DeferredCalls();

        Rank(int rank, Backend be) {
            this.rank = rank;
            this.be = be;
        }

        @Override public int rank() { return rank; }
        @Override public int size() { return size; }

        private float[] sum(Object[] all) {
            float[] acc = ((float[]) all[0]).clone();
            for (int r = 1; r < size; r++) {
                float[] x = (float[]) all[r];
                for (int i = 0; i < acc.length; i++) acc[i] += x[i];
            }
            return acc;
        }

        /** Writes into t's own memory: no backend tensor is made, so the ranks' measured peaks are the trainer's alone. */
        private void set(Tensor t, float[] values) {
            CpuTensor c = (CpuTensor) t;
            if (t.dtype() == ai.longrwkv.core.tensor.DType.F32) {
                c.buf().put(0, values);
            } else {
                for (int i = 0; i < values.length; i++) c.bf16().put(i, ai.longrwkv.core.io.Float16.floatToBf16(values[i]));
            }
        }

        @Override public void allReduceSum(Tensor t) {
            deferred.runAll();
            set(t, sum(exchange(rank, be.download(t).data())));
        }

        @Override public Queued allReduceSumQueued(Tensor t) { return deferred.add(() -> set(t, sum(exchange(rank, be.download(t).data())))); }

        @Override
        public Queued reduceSumQueued(Tensor t, int root) {
            return deferred.add(() -> {
                float[] s = sum(exchange(rank, be.download(t).data()));
                if (rank == root) set(t, s);
            });
        }

        @Override public void await(Queued q) { deferred.runThrough(q); }

        @Override
        public void reduceSum(Tensor t, int root) {
            deferred.runAll();
            float[] s = sum(exchange(rank, be.download(t).data()));
            if (rank == root) set(t, s);
        }

        @Override
        public void broadcast(Tensor t, int root) {
            deferred.runAll();
            Object[] all = exchange(rank, be.download(t).data());
            if (rank != root) set(t, (float[]) all[root]);
        }

        @Override
        public void allGather(Tensor in, Tensor out) {
            deferred.runAll();
            Object[] all = exchange(rank, be.download(in).data());
            float[] o = new float[(int) out.size()];
            int n = (int) in.size();
            for (int r = 0; r < size; r++) System.arraycopy((float[]) all[r], 0, o, r * n, n);
            set(out, o);
        }

        @Override
        public void reduceScatterSum(Tensor in, Tensor out) {
            deferred.runAll();
            float[] s = sum(exchange(rank, be.download(in).data()));
            float[] mine = new float[(int) out.size()];
            System.arraycopy(s, rank * mine.length, mine, 0, mine.length);
            set(out, mine);
        }

        @Override
        public double[] allReduceSum(double[] values) {
            deferred.runAll();
            Object[] all = exchange(rank, values.clone());
            double[] acc = ((double[]) all[0]).clone();
            for (int r = 1; r < size; r++) {
                double[] x = (double[]) all[r];
                for (int i = 0; i < acc.length; i++) acc[i] += x[i];
            }
            return acc;
        }

        @Override public void barrier() {
            deferred.runAll();
            exchange(rank, null);
        }

        @Override
        public void abort(String reason) {
            aborted = "rank " + rank + " failed: " + reason;
            barrier.reset();
        }

        @Override public void close() { }
    }
}
