package ai.longrwkv.core.model;

import ai.longrwkv.core.tensor.HostTensor;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

class ModelInitTest {
    static final ModelConfig CFG = ModelConfig.forInit(3, 64, 16, 300);

    @Test
    void deterministicForASeedAndDifferentAcrossSeeds() {
        ModelWeights a = ModelInit.x052(CFG, 1), b = ModelInit.x052(CFG, 1), c = ModelInit.x052(CFG, 2);
        for (String k : a.tensors().keySet()) {
            assertArrayEquals(a.get(k).data(), b.get(k).data(), k);
        }
        assertFalse(java.util.Arrays.equals(a.get("head.weight").data(), c.get("head.weight").data()));
        assertEquals(ModelConfig.fromWeights(a, CFG.groupNormEps()), CFG);
    }

    @Test
    void followsTheX052Scheme() {
        ModelWeights w = ModelInit.x052(CFG, 3);
        int C = 64, L = 3;
        // layer 1: r0 = 1/2, r1 = 2/3
        float[] mixK = w.get("blocks.1.att.time_mix_k").data(), mixV = w.get("blocks.1.att.time_mix_v").data();
        for (int i = 0; i < C; i++) {
            assertEquals(Math.pow(i / 64.0, 2.0 / 3), mixK[i], 1e-6);
            assertEquals(Math.pow(i / 64.0, 2.0 / 3) + 0.15, mixV[i], 1e-6);
        }
        float[] td = w.get("blocks.2.att.time_decay").data();   // r0 = 1
        assertEquals(-6, td[0], 1e-6);
        assertEquals(-1, td[C - 1], 1e-5);
        assertEquals(-6 + 5 * Math.pow(10 / 63.0, 2.0), td[10], 1e-5);
        float[] u = w.get("blocks.0.att.time_faaaa").data();     // r0 = 0
        assertEquals(0.0, u[0], 1e-7);
        assertEquals(0.1, u[1], 1e-7);
        assertEquals(-0.1, u[2], 1e-7);
        assertEquals(Math.pow(2.0 / L, 0.7), w.get("blocks.1.att.ln_x.weight").data()[5], 1e-6);
        for (String zero : new String[]{"blocks.0.att.output.weight", "blocks.2.ffn.value.weight", "blocks.1.ffn.receptance.weight"}) {
            for (float v : w.get(zero).data()) assertEquals(0f, v, zero);
        }
        for (float v : w.get("emb.weight").data()) assertTrue(Math.abs(v) <= 1e-4f);
        assertOrthogonal(w.get("blocks.0.att.receptance.weight"), 1.0);
        assertOrthogonal(w.get("blocks.0.att.key.weight"), 0.1);
        assertOrthogonal(w.get("blocks.0.ffn.key.weight"), 1.0);   // [F, C], F > C
        assertOrthogonal(w.get("head.weight"), 0.5 * Math.sqrt(300.0 / 64));
    }

    @Test
    void memoryChannelsAndHeadsSetOnlyTheirDecays() {
        // CFG: 4 heads of 16; 2 long channels per head, and the last head long in every channel
        ModelWeights plain = ModelInit.x052(CFG, 5), lazy = ModelInit.x052Lazy(CFG, 5, 2, 1, -16, false);
        for (int l = 0; l < 3; l++) {
            float[] x052 = plain.get("blocks." + l + ".att.time_decay").data(), td = lazy.get("blocks." + l + ".att.time_decay").data();
            for (int h = 0; h < 4; h++) {
                for (int i = 0; i < 16; i++) {
                    boolean memory = h == 3 || i < 2;
                    assertEquals(memory ? -16f : x052[h * 16 + i], td[h * 16 + i], "layer " + l + " head " + h + " channel " + i);
                }
            }
        }
        for (String k : plain.tensors().keySet()) {
            if (!k.endsWith("time_decay")) assertArrayEquals(plain.get(k).data(), lazy.get(k).data(), k);
        }
        ModelWeights set = ModelInit.x052(CFG, 5);
        ModelInit.setMemoryChannels(set, CFG, 2, 1, -16);
        for (String k : plain.tensors().keySet()) assertArrayEquals(lazy.get(k).data(), set.get(k).data(), k);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ModelInit.x052Lazy(CFG, 5, 0, 5, -16, false));
        assertEquals("memory heads must be 0..4 (the heads per layer), got 5", e.getMessage());
    }

    /** W (scaled by 1/gain) has orthonormal rows or columns, whichever are fewer. */
    private static void assertOrthogonal(HostTensor w, double gain) {
        int rows = w.dim(0), cols = w.dim(1);
        boolean byCols = rows >= cols;
        int n = byCols ? cols : rows, len = byCols ? rows : cols;
        float[] d = w.data();
        for (int a = 0; a < n; a++) {
            for (int b = a; b < n; b++) {
                double s = 0;
                for (int i = 0; i < len; i++) {
                    double x = byCols ? d[i * cols + a] : d[a * cols + i];
                    double y = byCols ? d[i * cols + b] : d[b * cols + i];
                    s += x * y;
                }
                assertEquals(a == b ? gain * gain : 0.0, s, 1e-4 * gain * gain);
            }
        }
    }
}
