package ai.longrwkv.core.backend.cpu;

import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.Pointer;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

import java.nio.FloatBuffer;
import java.util.function.IntConsumer;

/**
 * Elementwise work on native tensors in blocks: each block is bulk-copied into Java arrays (a memcpy), computed with
 * plain or Vector API loops, and copied back; blocks run in parallel. Element-by-element FloatBuffer access pays an
 * index and scope check on every get and put, which made these ops 3-5x slower.
 *
 * <p>Determinism: work is split into fixed blocks whatever the thread count, and anything summed over blocks is summed
 * in block order by the caller, so results are the same bits on 1 or 64 threads.
 */
final class Blocks {
    private Blocks() { }

    static final int SIZE = 8192;
    static final VectorSpecies<Float> SPECIES = CpuMath.SPECIES;
    private static final ThreadLocal<float[][]> BUFFERS = ThreadLocal.withInitial(() -> new float[4][SIZE]);

    /** out[i] = f(x[i]) for a block of n values. */
    interface Unary {
        void apply(float[] x, float[] out, int n);
    }

    /** out[i] = f(x[i], y[i]). */
    interface Binary {
        void apply(float[] x, float[] y, float[] out, int n);
    }

    /** Runs body(i) for every i in [0, tasks), in parallel on the backend's threads ({@link CpuPool}). */
    static void parallelFor(int tasks, IntConsumer body) {
        CpuPool.parallelFor(tasks, body);
    }

    /** Number of blocks of {@link #SIZE} values covering size values. */
    static int count(long size) {
        return (int) ((size + SIZE - 1) / SIZE);
    }

    /** Floats per task of {@link #zero} (1 MiB): below this a tensor is cleared by one memset on the calling thread. */
    static final long ZERO_FLOATS_PER_TASK = 1 << 18;

    /**
     * Sets {@code floats} floats from {@code p} to 0, in 1 MiB pieces on the backend's threads when there is more than
     * one: one core's stores do not reach the memory bandwidth that two reach, and new activation tensors and the
     * gradients cleared every step are hundreds of MB a step at L12-C768.
     */
    static void zero(FloatPointer p, long floats) {
        long tasks = (floats + ZERO_FLOATS_PER_TASK - 1) / ZERO_FLOATS_PER_TASK;
        if (tasks <= 1) {
            Pointer.memset(p, 0, floats * 4L);
            return;
        }
        parallelFor((int) tasks, t -> {
            long from = t * ZERO_FLOATS_PER_TASK, n = Math.min(ZERO_FLOATS_PER_TASK, floats - from);
            Pointer.memset(p.getPointer(from), 0, n * 4L);
        });
    }

    /** This thread's four block buffers. */
    static float[][] buffers() {
        return BUFFERS.get();
    }

    static void map(FloatBuffer x, FloatBuffer out, long size, Unary f) {
        parallelFor(count(size), blk -> {
            float[][] buf = BUFFERS.get();
            int off = blk * SIZE, n = (int) Math.min(SIZE, size - off);
            x.get(off, buf[0], 0, n);
            f.apply(buf[0], buf[1], n);
            out.put(off, buf[1], 0, n);
        });
    }

    static void map(FloatBuffer x, FloatBuffer y, FloatBuffer out, long size, Binary f) {
        parallelFor(count(size), blk -> {
            float[][] buf = BUFFERS.get();
            int off = blk * SIZE, n = (int) Math.min(SIZE, size - off);
            x.get(off, buf[0], 0, n);
            y.get(off, buf[1], 0, n);
            f.apply(buf[0], buf[1], buf[2], n);
            out.put(off, buf[2], 0, n);
        });
    }

    /** out[i] = 1 / (1 + exp(-x[i])); vector lanes and the scalar tail compute the same bits. */
    static void sigmoid(float[] x, float[] out, int n) {
        CpuMath.exp(x, out, n, -1f, 0f);
        int i = 0;
        FloatVector one = FloatVector.broadcast(SPECIES, 1f);
        for (int end = SPECIES.loopBound(n); i < end; i += SPECIES.length()) {
            one.div(FloatVector.fromArray(SPECIES, out, i).add(1f)).intoArray(out, i);
        }
        for (; i < n; i++) out[i] = 1f / (1f + out[i]);
    }
}
