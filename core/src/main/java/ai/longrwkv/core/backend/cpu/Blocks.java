package ai.longrwkv.core.backend.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

import java.nio.FloatBuffer;

/**
 * Elementwise work on native tensors in blocks: each block is bulk-copied into Java arrays (a memcpy), computed with
 * plain or Vector API loops, and copied back. Element-by-element FloatBuffer access pays an index and scope check on
 * every get and put, which made these ops 3-5x slower.
 */
final class Blocks {
    private Blocks() { }

    static final int SIZE = 8192;
    static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;
    private static final ThreadLocal<float[][]> BUFFERS = ThreadLocal.withInitial(() -> new float[4][SIZE]);

    /** out[i] = f(x[i]) for a block of n values. */
    interface Unary {
        void apply(float[] x, float[] out, int n);
    }

    /** out[i] = f(x[i], y[i]). */
    interface Binary {
        void apply(float[] x, float[] y, float[] out, int n);
    }

    static void map(FloatBuffer x, FloatBuffer out, long size, Unary f) {
        float[][] buf = BUFFERS.get();
        for (long off = 0; off < size; off += SIZE) {
            int n = (int) Math.min(SIZE, size - off);
            x.get((int) off, buf[0], 0, n);
            f.apply(buf[0], buf[1], n);
            out.put((int) off, buf[1], 0, n);
        }
    }

    static void map(FloatBuffer x, FloatBuffer y, FloatBuffer out, long size, Binary f) {
        float[][] buf = BUFFERS.get();
        for (long off = 0; off < size; off += SIZE) {
            int n = (int) Math.min(SIZE, size - off);
            x.get((int) off, buf[0], 0, n);
            y.get((int) off, buf[1], 0, n);
            f.apply(buf[0], buf[1], buf[2], n);
            out.put((int) off, buf[2], 0, n);
        }
    }

    /** out[i] = 1 / (1 + exp(-x[i])). */
    static void sigmoid(float[] x, float[] out, int n) {
        for (int i = 0; i < n; i++) out[i] = 1f / (1f + CpuMath.exp(-x[i]));
    }
}
