package ai.longrwkv.core.backend.cpu;

import ai.longrwkv.core.backend.Tensor;
import ai.longrwkv.core.tensor.HostTensor;
import org.junit.jupiter.api.Test;

import java.lang.management.ManagementFactory;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * The CPU backend's vector kernels, once compiled, keep their vectors in registers: a WKV backward call allocates about
 * its scratch arrays and nothing per vector operation. When C2 gives up type speculation in a compilation (more
 * deoptimisation traps summed over its inlined methods than -XX:PerMethodTrapLimit), every FloatVector operation there
 * becomes a guarded call and its result a heap box: the WKV backward then allocated ~20x its scratch size per call and
 * ran 4.5x slower (scripts/jvm-opts.sh). This runs the chunked WKV backward until one call allocates less than a bound
 * (C2 has compiled it unboxed) and fails if that never happens; with -XX:PerMethodTrapLimit=0 (no speculation
 * anywhere) it fails. The suite's JVM gets the launcher's limit from the parent pom.
 */
class CpuKernelsUnboxedTest {

    @Test
    void testJvmHasTheLaunchersTrapLimit() {
        assertTrue(ManagementFactory.getRuntimeMXBean().getInputArguments().contains("-XX:PerMethodTrapLimit=100000"),
                "the test JVM gets scripts/jvm-opts.sh's -XX:PerMethodTrapLimit=100000 (parent pom jvm.flags)");
    }

    @Test
    void wkvBackwardRunsWithoutBoxingOnceCompiled() {
        int steps = 256, heads = 2, n = 64, c = heads * n;
        Random rnd = new Random(7);
        com.sun.management.ThreadMXBean threads = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        try (CpuBackend be = new CpuBackend()) {
            Tensor r = be.upload(random(rnd, steps, c)), k = be.upload(random(rnd, steps, c));
            Tensor v = be.upload(random(rnd, steps, c)), dy = be.upload(random(rnd, steps, c));
            float[] wd = new float[c];
            for (int i = 0; i < c; i++) wd[i] = (float) Math.exp(-Math.exp(-6 + 5.0 * (i % n) / (n - 1)));
            Tensor w = be.upload(new HostTensor(new int[]{heads, n}, wd)), u = be.upload(random(rnd, heads, n));
            Tensor s0 = be.upload(random(rnd, heads, n, n));
            Tensor dState = be.zeros(heads, n, n), dr = be.zeros(steps, c), dk = be.zeros(steps, c), dv = be.zeros(steps, c);
            Tensor dw = be.zeros(heads, n), du = be.zeros(heads, n);
            // Scratch per head: the chunk-start states (steps/16 x N x N floats) and ~20 arrays of 16 x N floats, plus
            // the forward's powers tables; 2x that covers the tensors' wrappers and the thread pool's tasks.
            long scratch = heads * ((long) (steps / WkvChunkedCpu.CHUNK) * n * n * 4 + 24L * WkvChunkedCpu.CHUNK * (n + 16) * 4);
            long bound = 2 * scratch, least = Long.MAX_VALUE;
            long deadline = System.nanoTime() + 60_000_000_000L;
            while (System.nanoTime() < deadline) {
                long before = threads.getTotalThreadAllocatedBytes();
                be.fill(dState, 0f);
                be.wkvBackward(r, k, v, w, u, s0, dy, dState, dr, dk, dv, dw, du);
                long bytes = threads.getTotalThreadAllocatedBytes() - before;
                least = Math.min(least, bytes);
                if (bytes < bound) return;
            }
            fail("the WKV backward never ran without boxing its vectors in 60 s: least " + least + " bytes allocated in one call, bound "
                    + bound + " (scratch " + scratch + "); is the JVM running with a low -XX:PerMethodTrapLimit?");
        }
    }

    private static HostTensor random(Random rnd, int... shape) {
        float[] d = new float[(int) HostTensor.numel(shape)];
        for (int i = 0; i < d.length; i++) d[i] = (float) (rnd.nextGaussian() * 0.5);
        return new HostTensor(shape, d);
    }
}
