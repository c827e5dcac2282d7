package ai.longrwkv.core.backend.cpu;

import org.bytedeco.javacpp.FloatPointer;
import org.junit.jupiter.api.Test;

import java.util.Random;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The backend's fp32 products cut into blocks of C on its own threads, and the thread pool under them: a product cut
 * into any number of blocks matches a double-precision reference and is the same bits on every call (not the same bits
 * for different numbers of blocks: OpenBLAS's kernels round a 112-row block's rows differently from a 203-row call's,
 * found by this test, so a run is reproducible for a given thread count); the pool runs every task once, propagates a
 * task's exception, and runs nested and concurrent loops correctly.
 */
class SgemmAndPoolTest {

    private static float[] random(Random rnd, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float) rnd.nextGaussian();
        return a;
    }

    private static float[] product(boolean ta, boolean tb, int m, int n, int k, float[] a, float[] b, float beta, float[] c0, int parts) {
        try (FloatPointer pa = new FloatPointer(a); FloatPointer pb = new FloatPointer(b); FloatPointer pc = new FloatPointer(c0)) {
            Sgemm.gemm(ta, tb, m, n, k, 0.75f, pa, ta ? m : k, pb, tb ? k : n, beta, pc, n, parts);
            float[] c = new float[m * n];
            pc.get(c);
            return c;
        }
    }

    @Test
    void blocksGiveTheSameBitsAsOneCallAndMatchTheReference() {
        Random rnd = new Random(7);
        // shapes of the model (rows > cols and cols > rows, so both cuts run), sizes that leave partial blocks, and
        // sizes (32j + 1, 48j + 1 rows) whose blocks once stopped short of the last row or column (review found it)
        int[][] shapes = {{203, 96, 70}, {64, 333, 129}, {300, 128, 128}, {37, 500, 64}, {33, 8, 64}, {8, 33, 64}, {1025, 48, 24}, {97, 16, 8}};
        for (int[] s : shapes) {
            int m = s[0], n = s[1], k = s[2];
            for (int t = 0; t < 4; t++) {
                boolean ta = (t & 1) != 0, tb = (t & 2) != 0;
                float[] a = random(rnd, m * k), b = random(rnd, k * n), c0 = random(rnd, m * n);
                float beta = t == 3 ? 0f : 0.5f;
                for (int parts : new int[]{1, 2, 3, 5, 16}) {
                    String what = "m=" + m + " n=" + n + " k=" + k + " ta=" + ta + " tb=" + tb + " parts=" + parts;
                    float[] c = product(ta, tb, m, n, k, a, b, beta, c0, parts);
                    assertArrayEquals(c, product(ta, tb, m, n, k, a, b, beta, c0, parts), what + ": a second call");
                    for (int i = 0; i < m; i++) {
                        for (int j = 0; j < n; j++) {
                            double ref = beta * c0[i * n + j];
                            for (int q = 0; q < k; q++) {
                                double x = ta ? a[q * m + i] : a[i * k + q], y = tb ? b[j * k + q] : b[q * n + j];
                                ref += 0.75 * x * y;
                            }
                            // fp32 accumulation of k products of unit normals: error ~ sqrt(k) ulps of the terms
                            assertEquals(ref, c[i * n + j], 2e-6 * k, what + ", element " + i + "," + j);
                        }
                    }
                }
            }
        }
    }

    @Test
    void poolRunsEveryTaskOnceAndPropagatesFailures() {
        CpuPool.withThreads(3, () -> {
            for (int tasks : new int[]{0, 1, 2, 7, 1000}) {
                AtomicInteger[] hits = new AtomicInteger[tasks];
                for (int i = 0; i < tasks; i++) hits[i] = new AtomicInteger();
                CpuPool.parallelFor(tasks, i -> hits[i].incrementAndGet());
                for (int i = 0; i < tasks; i++) assertEquals(1, hits[i].get(), "task " + i + " of " + tasks);
            }
            // a loop inside a task runs on that task's thread
            AtomicInteger inner = new AtomicInteger();
            CpuPool.parallelFor(4, i -> CpuPool.parallelFor(5, j -> inner.incrementAndGet()));
            assertEquals(20, inner.get());
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> CpuPool.parallelFor(50, i -> { if (i == 17) throw new IllegalArgumentException("task 17"); }));
            assertEquals("task 17", e.getMessage());
            // the pool still works after a failed loop
            AtomicInteger after = new AtomicInteger();
            CpuPool.parallelFor(10, i -> after.incrementAndGet());
            assertEquals(10, after.get());
            return null;
        });
    }

    @Test
    void loopsFromTwoThreadsAtOnceEachRunAllTheirTasks() throws Exception {
        AtomicInteger a = new AtomicInteger(), b = new AtomicInteger();
        Thread other = new Thread(() -> { for (int r = 0; r < 200; r++) CpuPool.parallelFor(64, i -> a.incrementAndGet()); });
        other.start();
        for (int r = 0; r < 200; r++) CpuPool.parallelFor(64, i -> b.incrementAndGet());
        other.join();
        assertEquals(200 * 64, a.get());
        assertEquals(200 * 64, b.get());
    }

    /**
     * Blocks.zero, which clears new tensors and fill(0), in pieces on the pool's threads: every float of a size that
     * ends in a partial piece, and nothing past the end.
     */
    @Test
    void zeroClearsEveryFloatInPiecesAndNothingPastTheEnd() {
        long n = 3 * Blocks.ZERO_FLOATS_PER_TASK + 12345;
        CpuPool.withThreads(3, () -> {
            try (FloatPointer p = new FloatPointer(n + 16)) {
                for (long i = 0; i < n + 16; i++) p.put(i, 1.5f);
                Blocks.zero(p, n);
                float[] back = new float[(int) n + 16];
                p.get(back);
                for (int i = 0; i < n; i++) if (back[i] != 0f) fail("float " + i + " of " + n + " is " + back[i]);
                for (int i = (int) n; i < n + 16; i++) assertEquals(1.5f, back[i], "float " + i + ", past the end");
            }
            return null;
        });
    }
}
