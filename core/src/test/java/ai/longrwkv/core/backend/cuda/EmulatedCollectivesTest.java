package ai.longrwkv.core.backend.cuda;

import ai.longrwkv.core.backend.Tensor;
import ai.longrwkv.core.backend.cpu.CpuBackend;
import ai.longrwkv.core.dist.CollectiveException;
import ai.longrwkv.core.dist.Communicator;
import ai.longrwkv.core.tensor.DType;
import ai.longrwkv.core.tensor.HostTensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The emulation of NCCL on emulated CUDA devices, through the public seam ({@link CudaBackend#newCommunicatorId},
 * {@link CudaBackend#communicator}): 2 and 4 ranks, one thread and one emulated backend per rank, as the
 * data-parallel trainer runs them in CI. Sums are checked bit for bit against the host's sum in rank order (rank 0's
 * values + rank 1's + ...), on values of mixed magnitudes where another order gives other bits (checked too, so the
 * comparison can fail); bf16 is moved bit-exactly. Then the errors: wrong dtypes and sizes, ranks that call different
 * collectives, a rank that never arrives (the others time out naming it), abort waking the waiters.
 */
class EmulatedCollectivesTest {
    static final long TIMEOUT = 20_000;

    /** What a rank does with its backend and communicator. */
    interface RankBody<T> {
        T run(CudaBackend b, Communicator c, int rank) throws Exception;
    }

    /** A rank's result or failure. */
    record Outcome<T>(T value, Throwable error) {
        T get() {
            if (error != null) throw new AssertionError("a rank failed: " + error, error);
            return value;
        }
    }

    static byte[] newId() {
        try (CudaBackend b = CudaBackend.emulated()) {
            return b.newCommunicatorId();
        }
    }

    /** Runs body on n ranks (threads), each with its own emulated backend joined to one new group. */
    static <T> List<Outcome<T>> onRanks(int n, long timeoutMillis, RankBody<T> body) throws Exception {
        byte[] id = newId();
        ExecutorService pool = Executors.newFixedThreadPool(n);
        try {
            List<Future<Outcome<T>>> fs = new ArrayList<>();
            for (int r = 0; r < n; r++) {
                int rank = r;
                fs.add(pool.submit(() -> {
                    try (CudaBackend b = CudaBackend.emulated(); Communicator c = b.communicator(id, rank, n, timeoutMillis)) {
                        return new Outcome<>(body.run(b, c, rank), null);
                    } catch (Throwable e) {
                        return new Outcome<T>(null, e);
                    }
                }));
            }
            List<Outcome<T>> out = new ArrayList<>();
            for (Future<Outcome<T>> f : fs) out.add(f.get(60, TimeUnit.SECONDS));
            return out;
        } finally {
            pool.shutdownNow();
        }
    }

    /** Values of mixed magnitudes (1e-3 .. 1e3): fp32 sums of these depend on the order. */
    static float[] values(int rank, int n) {
        Random rnd = new Random(1000 + rank);
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) (rnd.nextGaussian() * Math.pow(10, rnd.nextInt(7) - 3));
        return v;
    }

    /** Exactly representable in bf16 (the low 16 bits clear), so that upload does not round them. */
    static float[] bf16Values(int rank, int n) {
        float[] v = values(rank, n);
        for (int i = 0; i < n; i++) v[i] = Float.intBitsToFloat(Float.floatToRawIntBits(v[i]) & 0xffff0000);
        return v;
    }

    /** The host's sum in rank order, in fp32. */
    static float[] rankOrderSum(int ranks, int n) {
        float[] acc = values(0, n).clone();
        for (int r = 1; r < ranks; r++) {
            float[] x = values(r, n);
            for (int i = 0; i < n; i++) acc[i] += x[i];
        }
        return acc;
    }

    static void assertBitEqual(float[] expected, float[] actual, String what) {
        assertEquals(expected.length, actual.length, what + ": length");
        for (int i = 0; i < expected.length; i++) {
            if (Float.floatToRawIntBits(expected[i]) != Float.floatToRawIntBits(actual[i])) {
                fail(what + ": element " + i + " is " + actual[i] + ", expected " + expected[i] + " (bit-exact)");
            }
        }
    }

    static HostTensor host(float[] v, int... shape) { return new HostTensor(shape, v); }

    @Test
    void rankOrderMattersForTheseValues() {
        // the bit-exact checks below can fail: summing the same values in reverse rank order gives other bits
        int n = 1000;
        float[] forward = rankOrderSum(4, n), reverse = values(3, n).clone();
        for (int r = 2; r >= 0; r--) {
            float[] x = values(r, n);
            for (int i = 0; i < n; i++) reverse[i] += x[i];
        }
        int differ = 0;
        for (int i = 0; i < n; i++) if (Float.floatToRawIntBits(forward[i]) != Float.floatToRawIntBits(reverse[i])) differ++;
        assertTrue(differ > 10, "only " + differ + " of " + n + " sums depend on the order");
    }

    @ParameterizedTest
    @ValueSource(ints = {2, 4})
    void allReduceSumIsTheRankOrderSum(int ranks) throws Exception {
        int n = 1000;
        float[] expected = rankOrderSum(ranks, n);
        for (Outcome<float[]> o : onRanks(ranks, TIMEOUT, (b, c, r) -> {
            assertEquals(r, c.rank());
            assertEquals(ranks, c.size());
            try (Tensor t = b.upload(host(values(r, n), 10, 100))) {
                c.allReduceSum(t);
                return b.download(t).data();
            }
        })) {
            assertBitEqual(expected, o.get(), "allReduceSum");
        }
    }

    @Test
    void allReduceSumOnARowViewChangesOnlyThoseRows() throws Exception {
        int ranks = 2, rows = 5, cols = 40;
        float[] sum = rankOrderSum(ranks, rows * cols);
        List<Outcome<float[]>> outs = onRanks(ranks, TIMEOUT, (b, c, r) -> {
            try (Tensor t = b.upload(host(values(r, rows * cols), rows, cols))) {
                c.allReduceSum(b.rows(t, 1, 3));
                return b.download(t).data();
            }
        });
        for (int r = 0; r < ranks; r++) {
            float[] got = outs.get(r).get(), mine = values(r, rows * cols);
            assertBitEqual(Arrays.copyOfRange(mine, 0, cols), Arrays.copyOfRange(got, 0, cols), "rank " + r + " row 0");
            assertBitEqual(Arrays.copyOfRange(sum, cols, 4 * cols), Arrays.copyOfRange(got, cols, 4 * cols), "rank " + r + " rows 1..3");
            assertBitEqual(Arrays.copyOfRange(mine, 4 * cols, 5 * cols), Arrays.copyOfRange(got, 4 * cols, 5 * cols), "rank " + r + " row 4");
        }
    }

    @Test
    void reduceSumWritesOnlyTheRoot() throws Exception {
        int ranks = 4, n = 300, root = 2;
        List<Outcome<float[]>> outs = onRanks(ranks, TIMEOUT, (b, c, r) -> {
            try (Tensor t = b.upload(host(values(r, n), n))) {
                c.reduceSum(t, root);
                return b.download(t).data();
            }
        });
        for (int r = 0; r < ranks; r++) {
            assertBitEqual(r == root ? rankOrderSum(ranks, n) : values(r, n), outs.get(r).get(), "reduceSum rank " + r);
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"fp32", "bf16"})
    void broadcastCopiesTheRoot(String dtype) throws Exception {
        DType dt = DType.parse(dtype);
        int ranks = 4, n = 257, root = 1;
        for (Outcome<float[]> o : onRanks(ranks, TIMEOUT, (b, c, r) -> {
            try (Tensor t = b.upload(host(bf16Values(r, n), n), dt)) {
                c.broadcast(t, root);
                return b.download(t).data();
            }
        })) {
            assertBitEqual(bf16Values(root, n), o.get(), "broadcast " + dtype);
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"fp32", "bf16"})
    void allGatherConcatenatesInRankOrder(String dtype) throws Exception {
        DType dt = DType.parse(dtype);
        int ranks = 4, n = 33;
        float[] expected = new float[ranks * n];
        for (int r = 0; r < ranks; r++) System.arraycopy(bf16Values(r, n), 0, expected, r * n, n);
        for (Outcome<float[][]> o : onRanks(ranks, TIMEOUT, (b, c, r) -> {
            try (Tensor in = b.upload(host(bf16Values(r, n), n), dt); Tensor out = b.zeros(dt, ranks, n);
                 Tensor inPlace = b.zeros(dt, ranks, n)) {
                c.allGather(in, out);
                // in place, as NCCL allows it: this rank's part of the output is the input
                b.copy(in, b.rows(inPlace, r, 1));
                c.allGather(b.rows(inPlace, r, 1), inPlace);
                return new float[][]{b.download(out).data(), b.download(inPlace).data()};
            }
        })) {
            assertBitEqual(expected, o.get()[0], "allGather " + dtype);
            assertBitEqual(expected, o.get()[1], "in-place allGather " + dtype);
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {2, 4})
    void reduceScatterSumGivesEachRankItsSegment(int ranks) throws Exception {
        int n = 50;
        float[] sum = rankOrderSum(ranks, ranks * n);
        List<Outcome<float[][]>> outs = onRanks(ranks, TIMEOUT, (b, c, r) -> {
            try (Tensor in = b.upload(host(values(r, ranks * n), ranks, n)); Tensor out = b.zeros(n);
                 Tensor inPlace = b.upload(host(values(r, ranks * n), ranks, n))) {
                c.reduceScatterSum(in, out);
                c.reduceScatterSum(inPlace, b.rows(inPlace, r, 1));   // in place: the output is this rank's segment
                return new float[][]{b.download(out).data(), Arrays.copyOfRange(b.download(inPlace).data(), r * n, (r + 1) * n)};
            }
        });
        for (int r = 0; r < ranks; r++) {
            float[] segment = Arrays.copyOfRange(sum, r * n, (r + 1) * n);
            assertBitEqual(segment, outs.get(r).get()[0], "reduceScatterSum rank " + r);
            assertBitEqual(segment, outs.get(r).get()[1], "in-place reduceScatterSum rank " + r);
        }
    }

    @Test
    void allReduceOfDoublesIsTheRankOrderSumInFp64() throws Exception {
        int ranks = 4;
        double[][] v = new double[ranks][];
        for (int r = 0; r < ranks; r++) {
            Random rnd = new Random(r);
            v[r] = new double[]{rnd.nextGaussian() * 1e10, rnd.nextGaussian() * 1e-10, rnd.nextGaussian(), r};
        }
        double[] expected = v[0].clone();
        for (int r = 1; r < ranks; r++) for (int i = 0; i < expected.length; i++) expected[i] += v[r][i];
        for (Outcome<double[]> o : onRanks(ranks, TIMEOUT, (b, c, r) -> {
            c.barrier();
            double[] empty = c.allReduceSum(new double[0]);
            assertEquals(0, empty.length);
            return c.allReduceSum(v[r]);
        })) {
            double[] got = o.get();
            for (int i = 0; i < expected.length; i++) {
                assertEquals(Double.doubleToRawLongBits(expected[i]), Double.doubleToRawLongBits(got[i]), "element " + i);
            }
        }
    }

    @Test
    void oneRankIsTheIdentity() throws Exception {
        float[] v = values(0, 64);
        float[] got = onRanks(1, TIMEOUT, (b, c, r) -> {
            try (Tensor t = b.upload(host(v, 64)); Tensor out = b.zeros(64)) {
                c.allReduceSum(t);
                c.reduceScatterSum(t, out);
                c.allGather(out, t);
                c.broadcast(t, 0);
                c.reduceSum(t, 0);
                return b.download(t).data();
            }
        }).get(0).get();
        assertBitEqual(v, got, "1 rank");
    }

    // ---------------------------------------------------------------- errors
    @Test
    void wrongDtypesSizesAndTensorsAreOneClearLine() throws Exception {
        onRanks(1, TIMEOUT, (b, c, r) -> {
            try (Tensor bf = b.zeros(DType.BF16, 4); Tensor f = b.zeros(4); Tensor f8 = b.zeros(8); Tensor f3 = b.zeros(3);
                 CudaBackend other = CudaBackend.emulated(); Tensor foreign = other.zeros(4)) {
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> c.allReduceSum(bf));
                assertTrue(e.getMessage().startsWith("allReduceSum takes fp32 tensors, got tensor"), e.getMessage());
                e = assertThrows(IllegalArgumentException.class, () -> c.reduceScatterSum(f8, f3));
                assertTrue(e.getMessage().contains("must hold 1 x 3 = 3 values"), e.getMessage());
                e = assertThrows(IllegalArgumentException.class, () -> c.allGather(f, f8));
                assertTrue(e.getMessage().contains("must hold 1 x 4 = 4 values"), e.getMessage());
                e = assertThrows(IllegalArgumentException.class, () -> c.allGather(bf, f));
                assertTrue(e.getMessage().contains("differ in dtype"), e.getMessage());
                e = assertThrows(IllegalArgumentException.class, () -> c.broadcast(f, 1));
                assertTrue(e.getMessage().contains("root 1 is outside 0..0"), e.getMessage());
                e = assertThrows(IllegalArgumentException.class, () -> c.allReduceSum(foreign));
                assertTrue(e.getMessage().contains("belongs to another backend"), e.getMessage());
                e = assertThrows(IllegalArgumentException.class, () -> c.allReduceSum(new CpuBackend().zeros(2)));
                assertTrue(e.getMessage().contains("is not a CUDA tensor"), e.getMessage());
                // none of these reached the group: it still works
                c.allReduceSum(f);
            }
            return null;
        }).get(0).get();
    }

    @Test
    void ranksThatCallDifferentCollectivesAllFailNamingWhatEachCalled() throws Exception {
        List<Outcome<Object>> outs = onRanks(2, TIMEOUT, (b, c, r) -> {
            try (Tensor t = b.zeros(r == 0 ? 10 : 12)) {
                c.allReduceSum(t);
            }
            return null;
        });
        for (int r = 0; r < 2; r++) {
            Throwable e = outs.get(r).error();
            assertInstanceOf(CollectiveException.class, e, "rank " + r);
            assertTrue(e.getMessage().startsWith("rank " + r + ": allReduce #1"), e.getMessage());
            assertTrue(e.getMessage().contains("rank 0 allReduce (fp32, 10 values), rank 1 allReduce (fp32, 12 values)"), e.getMessage());
        }
    }

    @Test
    void aRankThatNeverArrivesIsNamedByTheOthersTimeout() throws Exception {
        CountDownLatch othersDone = new CountDownLatch(2);
        long start = System.nanoTime();
        List<Outcome<Object>> outs = onRanks(3, 500, (b, c, r) -> {
            try (Tensor t = b.zeros(4096)) {
                c.allReduceSum(t);                          // #1: everybody
                if (r == 2) {
                    othersDone.await(20, TimeUnit.SECONDS);  // stuck: never calls #2
                    return null;
                }
                try {
                    c.allReduceSum(t);
                } finally {
                    othersDone.countDown();
                }
            }
            return null;
        });
        double seconds = (System.nanoTime() - start) / 1e9;
        assertNull(outs.get(2).error());
        for (int r = 0; r < 2; r++) {
            Throwable e = outs.get(r).error();
            assertInstanceOf(CollectiveException.class, e, "rank " + r);
            String m = e.getMessage();
            // the first to time out wakes the other, which fails at once with the same facts
            assertEquals("rank " + r + ": allReduce #2 (fp32, 4096 values) did not complete in 0.5 s: ranks 0, 1 arrived, rank 2 did not "
                    + "(a rank died or is stuck: check its output)", m);
        }
        assertTrue(seconds < 10, "took " + seconds + " s");
    }

    @Test
    void initTimesOutNamingTheMissingRanks() {
        byte[] id = newId();
        try (CudaBackend b = CudaBackend.emulated()) {
            CollectiveException e = assertThrows(CollectiveException.class, () -> b.communicator(id, 0, 3, 300));
            assertEquals("rank 0: communicator init did not complete in 0.3 s: rank 0 joined, ranks 1, 2 did not "
                    + "(is every rank started, with the same id? check the other ranks' output)", e.getMessage());
        }
    }

    @Test
    void abortWakesEveryWaiterWithTheReason() throws Exception {
        long start = System.nanoTime();
        List<Outcome<Object>> outs = onRanks(3, 30_000, (b, c, r) -> {
            try (Tensor t = b.zeros(16)) {
                if (r == 2) {
                    Thread.sleep(300);
                    c.abort("CUDA out of memory in the backward of layer 3");
                    CollectiveException after = assertThrows(CollectiveException.class, () -> c.allReduceSum(t));
                    assertTrue(after.getMessage().contains("after this rank aborted"), after.getMessage());
                    return null;
                }
                c.allReduceSum(t);
            }
            return null;
        });
        double seconds = (System.nanoTime() - start) / 1e9;
        assertNull(outs.get(2).error(), String.valueOf(outs.get(2).error()));
        for (int r = 0; r < 2; r++) {
            Throwable e = outs.get(r).error();
            assertInstanceOf(CollectiveException.class, e, "rank " + r);
            assertEquals("rank " + r + ": allReduce #1 (fp32, 16 values): rank 2 failed: CUDA out of memory in the backward of layer 3", e.getMessage());
        }
        assertTrue(seconds < 10, "abort took " + seconds + " s to wake the waiters (the timeout is 30 s)");
    }

    @Test
    void badIdsSizesAndRanksAreRefused() {
        try (CudaBackend b = CudaBackend.emulated()) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> b.communicator(new byte[128], 0, 1, 1000));
            assertTrue(e.getMessage().contains("not made by the emulated device"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> b.communicator(newId(), 2, 2, 1000));
            assertEquals("rank 2 is outside 0..1", e.getMessage());
        }
        CpuBackend cpu = new CpuBackend();
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, cpu::newCommunicatorId);
        assertTrue(e.getMessage().contains("needs the CUDA backend"), e.getMessage());
    }
}
