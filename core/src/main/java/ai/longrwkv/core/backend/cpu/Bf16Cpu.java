package ai.longrwkv.core.backend.cpu;

import ai.longrwkv.core.io.Float16;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

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
            narrow(f, 0, s, len);
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
            narrow(src, srcOff + off, s, len);
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

    private static final VectorSpecies<Float> F = CpuMath.SPECIES;
    private static final VectorSpecies<Integer> I = IntVector.SPECIES_256;
    private static final VectorSpecies<Short> S = ShortVector.SPECIES_128;

    /**
     * s[i] = {@link Float16#floatToBf16}(f[fOff + i]) for i < n, bit for bit, eight lanes at a time: round half to even
     * by adding 0x7fff plus the lowest kept bit, and for a NaN the top half with the quiet bit set where the payload
     * sat only in the dropped bits (the scalar code's two cases, as a blend).
     */
    static void narrow(float[] f, int fOff, short[] s, int n) {
        int i = 0;
        for (int end = F.loopBound(n); i < end; i += F.length()) {
            FloatVector x = FloatVector.fromArray(F, f, fOff + i);
            IntVector bits = x.reinterpretAsInts();
            IntVector rounded = bits.add(0x7fff).add(bits.lanewise(VectorOperators.LSHR, 16).and(1)).lanewise(VectorOperators.LSHR, 16);
            VectorMask<Integer> nan = x.compare(VectorOperators.NE, x).cast(I);
            if (nan.anyTrue()) {
                IntVector top = bits.lanewise(VectorOperators.LSHR, 16);
                IntVector quiet = top.lanewise(VectorOperators.OR, 0x40, top.and(0x7f).compare(VectorOperators.EQ, 0));
                rounded = rounded.blend(quiet, nan);
            }
            ((ShortVector) rounded.convertShape(VectorOperators.I2S, S, 0)).intoArray(s, i);
        }
        for (; i < n; i++) s[i] = Float16.floatToBf16(f[fOff + i]);
    }

    static void widen(short[] s, float[] f, int n) {
        for (int i = 0; i < n; i++) f[i] = Float.intBitsToFloat(s[i] << 16);
    }

    private static int blocks(long n) {
        return (int) ((n + BLOCK - 1) / BLOCK);
    }
}
