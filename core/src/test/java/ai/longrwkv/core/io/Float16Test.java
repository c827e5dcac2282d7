package ai.longrwkv.core.io;

import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class Float16Test {

    private static short h(int bits) { return (short) bits; }

    private static boolean isHalfNaN(int bits) {
        return (bits & 0x7c00) == 0x7c00 && (bits & 0x3ff) != 0;
    }

    /** The value of a finite half, computed from the IEEE definition in double, independently of Float16. */
    private static double halfValue(int bits) {
        int sign = (bits >>> 15) & 1, exp = (bits >>> 10) & 0x1f, mant = bits & 0x3ff;
        double v = exp == 0 ? mant * Math.pow(2, -24) : (1 + mant / 1024.0) * Math.pow(2, exp - 15);
        return sign == 1 ? -v : v;
    }

    @Test
    void everyHalfRoundTripsExactly() {
        for (int bits = 0; bits < 0x10000; bits++) {
            float f = Float16.halfToFloat(h(bits));
            if (isHalfNaN(bits)) {
                assertTrue(Float.isNaN(f), "NaN pattern " + Integer.toHexString(bits));
            } else if ((bits & 0x7fff) == 0x7c00) {
                assertEquals(bits == 0x7c00 ? Float.POSITIVE_INFINITY : Float.NEGATIVE_INFINITY, f);
            } else {
                assertEquals(halfValue(bits), f, 0.0, "value of " + Integer.toHexString(bits));
            }
            // every pattern, NaN payloads included, comes back bit for bit
            assertEquals(bits, Float16.floatToHalf(f) & 0xffff, "round trip of " + Integer.toHexString(bits));
        }
    }

    @Test
    void knownHalfValues() {
        assertEquals(0x3c00, Float16.floatToHalf(1.0f) & 0xffff);
        assertEquals(0xc000, Float16.floatToHalf(-2.0f) & 0xffff);
        assertEquals(0x7bff, Float16.floatToHalf(65504f) & 0xffff);
        assertEquals(0x0001, Float16.floatToHalf(0x1p-24f) & 0xffff);
        assertEquals(0x0400, Float16.floatToHalf(0x1p-14f) & 0xffff);
        assertEquals(0x03ff, Float16.floatToHalf(0x1p-14f - 0x1p-24f) & 0xffff);
        assertEquals(0x8000, Float16.floatToHalf(-0.0f) & 0xffff);
        assertEquals(0x0000, Float16.floatToHalf(0.0f) & 0xffff);
        assertEquals(0x7c00, Float16.floatToHalf(Float.POSITIVE_INFINITY) & 0xffff);
        assertEquals(0xfc00, Float16.floatToHalf(Float.NEGATIVE_INFINITY) & 0xffff);
        assertEquals(0x3555, Float16.floatToHalf(1f / 3f) & 0xffff);
        assertEquals(1.0f, Float16.halfToFloat(h(0x3c00)));
        assertEquals(-2.0f, Float16.halfToFloat(h(0xc000)));
        assertEquals(65504f, Float16.halfToFloat(h(0x7bff)));
        assertEquals(0x1p-24f, Float16.halfToFloat(h(0x0001)));
    }

    @Test
    void halfRoundingTiesAndLimits() {
        // 1 + 2^-11 lies halfway between 0x3c00 and 0x3c01: ties go to the even 0x3c00
        assertEquals(0x3c00, Float16.floatToHalf(1f + 0x1p-11f) & 0xffff);
        // 1 + 3*2^-11 lies halfway between 0x3c01 and 0x3c02: even is 0x3c02
        assertEquals(0x3c02, Float16.floatToHalf(1f + 3 * 0x1p-11f) & 0xffff);
        assertEquals(0x3c01, Float16.floatToHalf(Math.nextUp(1f + 0x1p-11f)) & 0xffff);
        // 65520 is halfway between 65504 (odd mantissa) and the next power, so it becomes infinity; just below stays 65504
        assertEquals(0x7c00, Float16.floatToHalf(65520f) & 0xffff);
        assertEquals(0x7bff, Float16.floatToHalf(Math.nextDown(65520f)) & 0xffff);
        assertEquals(0x7c00, Float16.floatToHalf(1e10f) & 0xffff);
        assertEquals(0xfc00, Float16.floatToHalf(-1e10f) & 0xffff);
        // subnormal ties: 2^-25 is halfway between 0 and 2^-24 (even: 0), 3*2^-25 between 1 and 2 units (even: 2)
        assertEquals(0x0000, Float16.floatToHalf(0x1p-25f) & 0xffff);
        assertEquals(0x8000, Float16.floatToHalf(-0x1p-25f) & 0xffff);
        assertEquals(0x0001, Float16.floatToHalf(Math.nextUp(0x1p-25f)) & 0xffff);
        assertEquals(0x0002, Float16.floatToHalf(3 * 0x1p-25f) & 0xffff);
        assertEquals(0x0000, Float16.floatToHalf(1e-8f) & 0xffff);
        assertEquals(0x0000, Float16.floatToHalf(Float.MIN_VALUE) & 0xffff);
        // largest subnormal rounding up into the smallest normal
        assertEquals(0x0400, Float16.floatToHalf(0x1p-14f - 0x1p-26f) & 0xffff);
        assertTrue(isHalfNaN(Float16.floatToHalf(Float.NaN) & 0xffff));
        // a NaN whose payload is only in the low float bits must not turn into infinity
        assertTrue(isHalfNaN(Float16.floatToHalf(Float.intBitsToFloat(0x7f800001)) & 0xffff));
        assertEquals(0x8000, Float16.floatToHalf(Float.intBitsToFloat(0xff800001)) & 0x8000, "NaN sign kept");
    }

    /** Every midpoint between neighbouring halves rounds to the even one; a float ulp either side decides. */
    @Test
    void everyHalfMidpointRoundsToEven() {
        for (int bits = 0; bits < 0x7c00; bits++) {
            int next = bits + 1; // 0x7bff + 1 = 0x7c00 = infinity, which is also what overflow rounds to
            double lo = halfValue(bits);
            double hi = next == 0x7c00 ? 65536.0 : halfValue(next);
            float mid = (float) ((lo + hi) / 2); // exact: one bit more than half precision
            int even = (bits & 1) == 0 ? bits : next;
            for (int sign : new int[]{0, 0x8000}) {
                float m = sign == 0 ? mid : -mid;
                assertEquals(even | sign, Float16.floatToHalf(m) & 0xffff, "tie at " + m);
                float above = sign == 0 ? Math.nextUp(mid) : -Math.nextUp(mid);
                float below = sign == 0 ? Math.nextDown(mid) : -Math.nextDown(mid);
                assertEquals(next | sign, Float16.floatToHalf(above) & 0xffff, "just above " + m);
                assertEquals(bits | sign, Float16.floatToHalf(below) & 0xffff, "just below " + m);
            }
        }
    }

    /** Random floats in half's range: the result is a nearest half (no neighbour is strictly closer). */
    @Test
    void randomFloatsRoundToNearestHalf() {
        Random rnd = new Random(1234);
        for (int i = 0; i < 1_000_000; i++) {
            float f = Float.intBitsToFloat(rnd.nextInt());
            if (Float.isNaN(f) || Math.abs(f) >= 65504f) continue;
            int r = Float16.floatToHalf(f) & 0xffff;
            double err = Math.abs(f - Float16.halfToFloat(h(r)));
            int mag = r & 0x7fff, sign = r & 0x8000;
            if (mag < 0x7bff) assertTrue(err <= Math.abs(f - Float16.halfToFloat(h(sign | (mag + 1)))), "up neighbour of " + f);
            if (mag > 0) assertTrue(err <= Math.abs(f - Float16.halfToFloat(h(sign | (mag - 1)))), "down neighbour of " + f);
            if (mag == 0 && f != 0) {
                assertTrue(Math.abs(f) <= 0x1p-25f, "non-zero " + f + " became zero");
            }
        }
    }

    @Test
    void everyBf16RoundTripsExactly() {
        for (int bits = 0; bits < 0x10000; bits++) {
            float f = Float16.bf16ToFloat(h(bits));
            assertEquals(bits << 16, Float.floatToRawIntBits(f));
            assertEquals(bits, Float16.floatToBf16(f) & 0xffff, "round trip of " + Integer.toHexString(bits));
        }
    }

    @Test
    void bf16Rounding() {
        assertEquals(0x3f80, Float16.floatToBf16(1.0f) & 0xffff);
        assertEquals(0xc000, Float16.floatToBf16(-2.0f) & 0xffff);
        // ties to even: 0x3f808000 is halfway between 0x3f80 and 0x3f81, 0x3f818000 between 0x3f81 and 0x3f82
        assertEquals(0x3f80, Float16.floatToBf16(Float.intBitsToFloat(0x3f808000)) & 0xffff);
        assertEquals(0x3f82, Float16.floatToBf16(Float.intBitsToFloat(0x3f818000)) & 0xffff);
        assertEquals(0x3f81, Float16.floatToBf16(Float.intBitsToFloat(0x3f808001)) & 0xffff);
        assertEquals(0x3f80, Float16.floatToBf16(Float.intBitsToFloat(0x3f807fff)) & 0xffff);
        assertEquals(0x3eab, Float16.floatToBf16(1f / 3f) & 0xffff);
        // overflow: the largest float rounds to infinity, as in torch
        assertEquals(0x7f80, Float16.floatToBf16(Float.MAX_VALUE) & 0xffff);
        assertEquals(0xff80, Float16.floatToBf16(-Float.MAX_VALUE) & 0xffff);
        assertEquals(0x7f80, Float16.floatToBf16(Float.POSITIVE_INFINITY) & 0xffff);
        assertEquals(0x8000, Float16.floatToBf16(-0.0f) & 0xffff);
        // NaN stays NaN, sign kept, also when the payload lives only in the dropped low bits
        assertEquals(0x7fc0, Float16.floatToBf16(Float.NaN) & 0xffff);
        int lowPayload = Float16.floatToBf16(Float.intBitsToFloat(0x7f800001)) & 0xffff;
        assertTrue(Float.isNaN(Float16.bf16ToFloat(h(lowPayload))));
        int negNaN = Float16.floatToBf16(Float.intBitsToFloat(0xff800001)) & 0xffff;
        assertTrue(Float.isNaN(Float16.bf16ToFloat(h(negNaN))) && (negNaN & 0x8000) != 0);
    }

    /** Every bf16 midpoint (low 16 bits = 0x8000) rounds to even; one ulp either side rounds to nearest. */
    @Test
    void everyBf16MidpointRoundsToEven() {
        for (int bits = 0; bits < 0x10000; bits++) {
            if ((bits & 0x7f80) == 0x7f80) continue; // inf/NaN: no midpoint above them
            int mid = (bits << 16) | 0x8000;
            int even = (bits & 1) == 0 ? bits : bits + 1;
            assertEquals(even & 0xffff, Float16.floatToBf16(Float.intBitsToFloat(mid)) & 0xffff);
            assertEquals((bits + 1) & 0xffff, Float16.floatToBf16(Float.intBitsToFloat(mid + 1)) & 0xffff);
            assertEquals(bits, Float16.floatToBf16(Float.intBitsToFloat(mid - 1)) & 0xffff);
        }
    }
}
