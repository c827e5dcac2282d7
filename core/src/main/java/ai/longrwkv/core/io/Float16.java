package ai.longrwkv.core.io;

/**
 * Conversions between float32 and the two 16-bit float formats model files use: IEEE half precision (fp16, rwkv.cpp
 * FP16 files, safetensors F16) and bfloat16 (bf16, official RWKV checkpoints, safetensors BF16).
 * Java 17 has no {@code Float.float16ToFloat}, so they are written out here. Values travel as the raw bits in a short.
 */
public final class Float16 {
    private Float16() {}

    /** fp16 bits to float. Exact: every half value is representable as a float. NaN payloads are kept. */
    public static float halfToFloat(short bits) {
        int h = bits & 0xffff;
        int sign = (h & 0x8000) << 16;
        int exp = (h >>> 10) & 0x1f;
        int mant = h & 0x3ff;
        if (exp == 0) {
            // zero or subnormal: mant * 2^-24, which a float holds exactly
            float v = mant * 0x1p-24f;
            return sign != 0 ? -v : v;
        }
        if (exp == 0x1f) {
            // infinity (mant == 0) or NaN; the payload moves to the top of the float mantissa
            return Float.intBitsToFloat(sign | 0x7f800000 | (mant << 13));
        }
        return Float.intBitsToFloat(sign | ((exp - 15 + 127) << 23) | (mant << 13));
    }

    /**
     * float to fp16 bits, rounding to nearest, ties to even (what numpy and torch do). Values too large for half
     * become infinity, values too small become (signed) zero or a subnormal. NaN stays NaN, keeping the sign and
     * the top payload bits.
     */
    public static short floatToHalf(float f) {
        int bits = Float.floatToRawIntBits(f);
        int sign = (bits >>> 16) & 0x8000;
        int exp = (bits >>> 23) & 0xff;
        int mant = bits & 0x7fffff;

        if (exp == 0xff) {
            if (mant == 0) return (short) (sign | 0x7c00);
            int payload = mant >>> 13;
            // a payload that lived only in the dropped low bits would turn the NaN into infinity: mark it quiet
            if (payload == 0) payload = 0x200;
            return (short) (sign | 0x7c00 | payload);
        }

        int e = exp - 127 + 15; // exponent in half's bias
        if (e >= 0x1f) return (short) (sign | 0x7c00); // overflow even before rounding

        if (e >= 1) {
            // normal half: keep 10 of the 23 mantissa bits and round on the 13 dropped ones
            int half = (e << 10) | (mant >>> 13);
            int rest = mant & 0x1fff;
            if (rest > 0x1000 || (rest == 0x1000 && (half & 1) != 0)) {
                half++; // a carry moves into the exponent, and from 0x7bff into 0x7c00 = infinity, both correct
            }
            return (short) (sign | half);
        }

        // result is subnormal or zero. Float subnormals (exp == 0) are below 2^-126, far under half's 2^-25 cut-off.
        if (exp == 0) return (short) sign;
        int m = mant | 0x800000;   // value = m * 2^(exp - 150); in units of 2^-24 that is m * 2^(exp - 126)
        int shift = 126 - exp;     // >= 14 here since e <= 0
        if (shift > 24) return (short) sign; // below half the smallest subnormal: rounds to zero
        int half = m >>> shift;
        int rest = m & ((1 << shift) - 1);
        int halfway = 1 << (shift - 1);
        if (rest > halfway || (rest == halfway && (half & 1) != 0)) {
            half++; // may carry into 0x400, the smallest normal, which is right
        }
        return (short) (sign | half);
    }

    /** bf16 bits to float: bf16 is the top half of a float, so this is exact. */
    public static float bf16ToFloat(short bits) {
        return Float.intBitsToFloat((bits & 0xffff) << 16);
    }

    /** float to bf16 bits, rounding to nearest, ties to even. NaN stays NaN (sign and top payload kept). */
    public static short floatToBf16(float f) {
        int bits = Float.floatToRawIntBits(f);
        if (Float.isNaN(f)) {
            int top = bits >>> 16;
            // if the payload sat only in the dropped bits, truncation would give infinity: set the quiet bit
            if ((top & 0x7f) == 0) top |= 0x40;
            return (short) top;
        }
        // adding 0x7fff plus the lowest kept bit rounds half to even; overflow to infinity comes out naturally
        int rounded = bits + 0x7fff + ((bits >>> 16) & 1);
        return (short) (rounded >>> 16);
    }
}
