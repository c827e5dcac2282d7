package ai.longrwkv.eval;

import ai.longrwkv.core.backend.cpu.CpuBackend;
import ai.longrwkv.core.model.ModelConfig;
import ai.longrwkv.core.model.ModelInit;
import ai.longrwkv.core.model.ModelWeights;
import ai.longrwkv.core.model.Rwkv5Model;
import ai.longrwkv.core.model.RwkvState;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class StateGrowthTest {
    @Test
    void longChannelsAreThoseThatKeepHalfAValueOverTheLongestLength() {
        // w^T >= 1/2  <=>  exp(d) * T <= ln 2; at T = 1000: d <= ln(ln2 / 1000) = -7.27
        boolean[][] m = StateGrowth.longChannels(new float[][]{{-16f, -7.3f, -7.2f, -1f}}, 1000);
        assertArrayEquals(new boolean[]{true, true, false, false}, m[0]);
    }

    /**
     * On a model whose first 4 key channels per head never forget (time_decay -16), the first layer's key trace in
     * those channels stays as written (its input is the token alone, so the filler writes the same into both states),
     * while the short channels lose it within a few hundred tokens; the long channels' state keeps growing with the
     * filler. The rows must also match a by-hand run of the two prompts.
     */
    @Test
    void theKeyStaysInTheLongChannelsOfTheFirstLayerAndLeavesTheShortOnes() {
        ModelConfig cfg = TinyModels.config();
        ModelWeights w = TinyModels.withMemory(cfg, 4);
        ModelInit.setMemoryChannels(w, cfg, 4, -16);
        int n = cfg.headSize();
        SplittableRandom r = new SplittableRandom(9);
        int[] a = new int[40], b;
        for (int i = 0; i < a.length; i++) a[i] = 32 + r.nextInt(90);
        b = a.clone();
        b[20] = a[20] + 1;   // the "key": one token differs
        b[21] = a[21] + 2;
        int[] filler = new int[2000];
        for (int i = 0; i < filler.length; i++) filler[i] = 32 + (i * 7) % 60;
        int[] checkpoints = {100, 1040, 2040};
        float[][] decay = new float[cfg.nLayer()][];
        try (CpuBackend be = new CpuBackend(); Rwkv5Model m = Rwkv5Model.load(be, w, cfg.groupNormEps()); RwkvState s0 = m.newState()) {
            for (int l = 0; l < cfg.nLayer(); l++) decay[l] = be.download(m.params().get("blocks." + l + ".att.time_decay")).data();
            boolean[][] longCh = StateGrowth.longChannels(decay, 2040);
            for (int c = 0; c < longCh[0].length; c++) assertEquals(c % n < 4, longCh[0][c], "channel " + c);
            List<StateGrowth.Row> rows = StateGrowth.measure(m, s0, a, b, filler, checkpoints, longCh, 64, null);
            assertEquals(checkpoints.length * cfg.nLayer(), rows.size());
            StateGrowth.Row first = rows.get(0), last = rows.get(rows.size() - cfg.nLayer());
            assertEquals(0, first.layer());
            assertEquals(2040, last.tokens());
            assertTrue(first.longKey() > 0 && first.shortKey() > 0, "the key left a trace in both groups");
            assertEquals(first.longKey(), last.longKey(), 2e-3 * first.longKey(), "long channels keep the key (w^2000 = 1 - 2e-4)");
            assertTrue(last.shortKey() < 1e-3 * first.shortKey(), "short channels forgot it: " + last.shortKey() + " vs " + first.shortKey());
            assertTrue(last.longNorm() > 5 * first.longNorm(), "the filler accumulates in the long channels");
            assertTrue(last.longShare() < first.longShare() / 5);

            // by hand: the second layer at 1040 tokens
            try (RwkvState sa = s0.copy(be); RwkvState sb = s0.copy(be)) {
                int[] pa = concat(a, Arrays.copyOf(filler, 1000)), pb = concat(b, Arrays.copyOf(filler, 1000));
                m.forward(pa, sa, false, false).close();
                m.forward(pb, sb, false, false).close();
                float[] xa = be.download(sa.wkv[1]).data(), xb = be.download(sb.wkv[1]).data();
                double norm = 0, key = 0;
                for (int h = 0; h < cfg.nHead(); h++) {
                    for (int i = 4; i < n; i++) {
                        for (int j = 0; j < n; j++) {
                            int k = (h * n + i) * n + j;
                            norm += (double) xa[k] * xa[k];
                            key += (double) (xa[k] - xb[k]) * (xa[k] - xb[k]);
                        }
                    }
                }
                StateGrowth.Row row = rows.get(cfg.nLayer() + 1);
                assertEquals(1040, row.tokens());
                assertEquals(1, row.layer());
                assertEquals(Math.sqrt(norm), row.shortNorm(), 1e-4 * Math.sqrt(norm));
                assertEquals(Math.sqrt(key), row.shortKey(), 1e-3 * Math.sqrt(key) + 1e-6);

                // --per-head: after each layer's row of all heads one per head, the last head's by hand
                List<StateGrowth.Row> heads = StateGrowth.measure(m, s0, a, b, filler, checkpoints, longCh, 64, null, true);
                int h = cfg.nHead() - 1, per = cfg.nHead() + 1;
                assertEquals(checkpoints.length * cfg.nLayer() * per, heads.size());
                int at = cfg.nLayer() * per;   // 1040 tokens (the second checkpoint), layer 0
                StateGrowth.Row all = heads.get(at), mine = heads.get(at + 1 + h);
                assertEquals(-1, all.head());
                assertEquals(h, mine.head());
                assertEquals(rows.get(cfg.nLayer()), all, "the all-heads rows are the same as without --per-head");
                double longSq = 0;
                for (int i = 1; i <= cfg.nHead(); i++) longSq += Math.pow(heads.get(at + i).longNorm(), 2);
                assertEquals(all.longNorm(), Math.sqrt(longSq), 1e-9 * all.longNorm(), "the heads' squares add up to the layer's");
                float[] ya = be.download(sa.wkv[0]).data(), yb = be.download(sb.wkv[0]).data();
                double hLong = 0, hKey = 0;
                for (int i = 0; i < 4; i++) {
                    for (int j = 0; j < n; j++) {
                        int k = (h * n + i) * n + j;
                        hLong += (double) ya[k] * ya[k];
                        hKey += (double) (ya[k] - yb[k]) * (ya[k] - yb[k]);
                    }
                }
                assertEquals(Math.sqrt(hLong), mine.longNorm(), 1e-4 * Math.sqrt(hLong));
                assertEquals(Math.sqrt(hKey), mine.longKey(), 1e-3 * Math.sqrt(hKey) + 1e-6);
            }
        }
    }

    private static int[] concat(int[] x, int[] y) {
        int[] out = Arrays.copyOf(x, x.length + y.length);
        System.arraycopy(y, 0, out, x.length, y.length);
        return out;
    }
}
