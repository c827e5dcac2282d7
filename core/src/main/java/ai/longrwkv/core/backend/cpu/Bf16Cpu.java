package ai.longrwkv.core.backend.cpu;

import ai.longrwkv.core.io.Float16;

import java.nio.FloatBuffer;
import java.nio.ShortBuffer;

/**
 * bf16 <-> fp32 conversion between native buffers, in fixed blocks run in parallel. Widening is exact (a bf16 value is
 * the top half of a float); narrowing rounds to nearest even ({@link Float16#floatToBf16}), the rounding PyTorch's
 * {@code .bfloat16()} and CUDA's {@code __float2bfloat16_rn} use, so a bf16 tensor holds the same bits on every backend.
 */
final class Bf16Cpu {
    private Bf16Cpu() { }

    private static final int BLOCK = 16384;
    private static final ThreadLocal<short[]> SHORTS = ThreadLocal.withInitial(() -> new short[BLOCK]);
    private static final ThreadLocal<float[]> FLOATS = ThreadLocal.withInitial(() -> new float[BLOCK]);

    /** dst[dstOff + i] = widen(src[srcOff + i]) for i < n. */
    static void widen(ShortBuffer src, long srcOff, FloatBuffer dst, long dstOff, long n) {
        Blocks.parallelFor(blocks(n), blk -> {
            short[] s = SHORTS.get();
            float[] f = FLOATS.get();
            long off = (long) blk * BLOCK;
            int len = (int) Math.min(BLOCK, n - off);
            src.get((int) (srcOff + off), s, 0, len);
            widen(s, f, len);
            dst.put((int) (dstOff + off), f, 0, len);
        });
    }

    /** dst[dstOff + i] = round(src[srcOff + i]) for i < n. */
    static void narrow(FloatBuffer src, long srcOff, ShortBuffer dst, long dstOff, long n) {
        Blocks.parallelFor(blocks(n), blk -> {
            short[] s = SHORTS.get();
            float[] f = FLOATS.get();
            long off = (long) blk * BLOCK;
            int len = (int) Math.min(BLOCK, n - off);
            src.get((int) (srcOff + off), f, 0, len);
            for (int i = 0; i < len; i++) s[i] = Float16.floatToBf16(f[i]);
            dst.put((int) (dstOff + off), s, 0, len);
        });
    }

    /** dst[i] = round(src[i]) for i < n, from a Java array. */
    static void narrow(float[] src, ShortBuffer dst, long n) {
        narrow(src, 0, dst, 0, n);
    }

    /** dst[dstOff + i] = round(src[srcOff + i]) for i < n, from a Java array. */
    static void narrow(float[] src, int srcOff, ShortBuffer dst, long dstOff, long n) {
        Blocks.parallelFor(blocks(n), blk -> {
            short[] s = SHORTS.get();
            int off = blk * BLOCK, len = (int) Math.min(BLOCK, n - off);
            for (int i = 0; i < len; i++) s[i] = Float16.floatToBf16(src[srcOff + off + i]);
            dst.put((int) (dstOff + off), s, 0, len);
        });
    }

    /** dst[i] = widen(src[i]) for i < n, into a Java array. */
    static void widen(ShortBuffer src, float[] dst, long n) {
        Blocks.parallelFor(blocks(n), blk -> {
            short[] s = SHORTS.get();
            int off = blk * BLOCK, len = (int) Math.min(BLOCK, n - off);
            src.get(off, s, 0, len);
            for (int i = 0; i < len; i++) dst[off + i] = Float.intBitsToFloat(s[i] << 16);
        });
    }

    static void widen(short[] s, float[] f, int n) {
        for (int i = 0; i < n; i++) f[i] = Float.intBitsToFloat(s[i] << 16);
    }

    private static int blocks(long n) {
        return (int) ((n + BLOCK - 1) / BLOCK);
    }
}
