package ai.longrwkv.core.backend.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * The token-shift mix of one row, out = cur m + shifted (1 - m), and its backward, as Vector API loops over Java
 * copies of the rows (the backend runs blocks of rows in parallel). The lanes do the scalar tail's float operations in
 * the same order (no fused multiply-add), so every element gets the same bits wherever it falls.
 *
 * <p>Why: the scalar backward read every dOut row twice and summed dMix in double, 1.6 ms per [1024, 768] call on the
 * dev machine (4x the streaming time), and an L12 training step makes 72 such calls.
 */
final class TokenShiftCpu {
    private TokenShiftCpu() { }

    private static final VectorSpecies<Float> S = CpuMath.SPECIES;
    private static final int L = S.length();

    /** out[i] = cur[i] m[i] + shifted[i] oneMinusM[i], i < c. */
    static void mix(float[] cur, float[] shifted, float[] m, float[] oneMinusM, float[] out, int c) {
        int i = 0;
        for (int end = S.loopBound(c); i < end; i += L) {
            FloatVector.fromArray(S, cur, i).mul(FloatVector.fromArray(S, m, i))
                    .add(FloatVector.fromArray(S, shifted, i).mul(FloatVector.fromArray(S, oneMinusM, i))).intoArray(out, i);
        }
        for (; i < c; i++) out[i] = cur[i] * m[i] + shifted[i] * oneMinusM[i];
    }

    /**
     * As {@link #mix}, the same bits, with cur, shifted and out rows of native-order byte buffers (cur at byte
     * {@code curAt}, shifted at {@code shiftedAt} of the same buffer, out at {@code outAt}), loaded and stored straight
     * from native memory: no copies of the rows into arrays, which cost a fifth of the op's time.
     */
    static void mix(java.nio.ByteBuffer x, int curAt, int shiftedAt, float[] m, float[] oneMinusM, java.nio.ByteBuffer out,
                    int outAt, int c) {
        java.nio.ByteOrder order = CpuBackend.NATIVE;
        int i = 0;
        for (int end = S.loopBound(c); i < end; i += L) {
            FloatVector.fromByteBuffer(S, x, curAt + 4 * i, order).mul(FloatVector.fromArray(S, m, i))
                    .add(FloatVector.fromByteBuffer(S, x, shiftedAt + 4 * i, order).mul(FloatVector.fromArray(S, oneMinusM, i)))
                    .intoByteBuffer(out, outAt + 4 * i, order);
        }
        for (; i < c; i++) out.putFloat(outAt + 4 * i, x.getFloat(curAt + 4 * i) * m[i] + x.getFloat(shiftedAt + 4 * i) * oneMinusM[i]);
    }

    /**
     * One row of the backward: dMixAcc[i] += g[i] (cur[i] - shifted[i]); dx[i] = (dx[i] + g[i] m[i]) + gNext[i]
     * oneMinusM[i], where gNext is dOut of the next row (null for the last row: it has no successor).
     */
    static void backwardRow(float[] g, float[] gNext, float[] cur, float[] shifted, float[] m, float[] oneMinusM,
                            float[] dx, float[] dMixAcc, int c) {
        int i = 0;
        int end = S.loopBound(c);
        for (; i < end; i += L) {
            FloatVector gv = FloatVector.fromArray(S, g, i);
            FloatVector.fromArray(S, dMixAcc, i).add(gv.mul(FloatVector.fromArray(S, cur, i).sub(FloatVector.fromArray(S, shifted, i))))
                    .intoArray(dMixAcc, i);
            FloatVector d = FloatVector.fromArray(S, dx, i).add(gv.mul(FloatVector.fromArray(S, m, i)));
            if (gNext != null) d = d.add(FloatVector.fromArray(S, gNext, i).mul(FloatVector.fromArray(S, oneMinusM, i)));
            d.intoArray(dx, i);
        }
        for (; i < c; i++) {
            dMixAcc[i] += g[i] * (cur[i] - shifted[i]);
            float d = dx[i] + g[i] * m[i];
            if (gNext != null) d += gNext[i] * oneMinusM[i];
            dx[i] = d;
        }
    }

    /**
     * As {@link #backwardRow}, the same bits, on rows of native-order byte buffers: g at {@code gAt} of d, gNext at
     * {@code gNextAt} (negative for the last row), cur and shifted at {@code curAt} and {@code shiftedAt} of x, dx at
     * {@code dxAt} of dxb (read, added to, written back).
     */
    static void backwardRow(java.nio.ByteBuffer d, int gAt, int gNextAt, java.nio.ByteBuffer x, int curAt, int shiftedAt,
                            float[] m, float[] oneMinusM, java.nio.ByteBuffer dxb, int dxAt, float[] dMixAcc, int c) {
        java.nio.ByteOrder order = CpuBackend.NATIVE;
        boolean hasNext = gNextAt >= 0;
        int i = 0;
        int end = S.loopBound(c);
        for (; i < end; i += L) {
            int o = 4 * i;
            FloatVector gv = FloatVector.fromByteBuffer(S, d, gAt + o, order);
            FloatVector.fromArray(S, dMixAcc, i).add(gv.mul(FloatVector.fromByteBuffer(S, x, curAt + o, order)
                    .sub(FloatVector.fromByteBuffer(S, x, shiftedAt + o, order)))).intoArray(dMixAcc, i);
            FloatVector dv = FloatVector.fromByteBuffer(S, dxb, dxAt + o, order).add(gv.mul(FloatVector.fromArray(S, m, i)));
            if (hasNext) dv = dv.add(FloatVector.fromByteBuffer(S, d, gNextAt + o, order).mul(FloatVector.fromArray(S, oneMinusM, i)));
            dv.intoByteBuffer(dxb, dxAt + o, order);
        }
        for (; i < c; i++) {
            int o = 4 * i;
            float g = d.getFloat(gAt + o);
            dMixAcc[i] += g * (x.getFloat(curAt + o) - x.getFloat(shiftedAt + o));
            float dv = dxb.getFloat(dxAt + o) + g * m[i];
            if (hasNext) dv += d.getFloat(gNextAt + o) * oneMinusM[i];
            dxb.putFloat(dxAt + o, dv);
        }
    }
}
