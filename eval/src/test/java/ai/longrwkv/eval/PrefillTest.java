package ai.longrwkv.eval;

import ai.longrwkv.core.backend.cpu.CpuBackend;
import ai.longrwkv.core.model.ModelConfig;
import ai.longrwkv.core.model.Rwkv5Model;
import ai.longrwkv.core.model.RwkvState;
import ai.longrwkv.core.tensor.HostTensor;
import ai.longrwkv.core.tokenizer.Tokenizer;
import ai.longrwkv.core.tokenizer.Tokenizers;
import ai.longrwkv.datasets.synth.PasskeyTask;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Issue 6, test 3: chunked prefill = one-shot forward, and eval memory does not grow with the prompt length. */
class PrefillTest {
    private static int[] randomTokens(int n, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        int[] t = new int[n];
        for (int i = 0; i < n; i++) t[i] = r.nextInt(256);
        return t;
    }

    @Test
    void chunkedPrefillGivesTheOneShotNextTokenLogitsAndState() {
        ModelConfig cfg = TinyModels.config();
        int[] tokens = randomTokens(300, 5);
        try (CpuBackend be = new CpuBackend(); Rwkv5Model m = Rwkv5Model.load(be, TinyModels.withMemory(cfg, 3), cfg.groupNormEps());
             RwkvState oneShot = m.newState()) {
            float[] expected;
            try (Rwkv5Model.Activations a = m.forward(tokens, oneShot, false, true)) {
                HostTensor logits = be.download(a.logits());
                int v = cfg.vocabSize();
                expected = Arrays.copyOfRange(logits.data(), (tokens.length - 1) * v, tokens.length * v);
            }
            for (int chunk : new int[]{1, 7, 64, 299, 300, 1024}) {
                try (RwkvState s = m.newState()) {
                    float[] got = Prefill.run(m, tokens, s, chunk, null);
                    assertArrayEquals(expected, got, 2e-4f, "chunk " + chunk);
                    for (int l = 0; l < cfg.nLayer(); l++) {
                        assertArrayEquals(be.download(oneShot.wkv[l]).data(), be.download(s.wkv[l]).data(), 2e-4f, "wkv state, chunk " + chunk);
                        assertArrayEquals(be.download(oneShot.attX[l]).data(), be.download(s.attX[l]).data(), 1e-5f, "att_x, chunk " + chunk);
                    }
                }
            }
        }
    }

    @Test
    void prefillReportsEveryTokenToProgress() {
        ModelConfig cfg = TinyModels.config();
        try (CpuBackend be = new CpuBackend(); Rwkv5Model m = Rwkv5Model.load(be, TinyModels.withMemory(cfg, 3), cfg.groupNormEps());
             RwkvState s = m.newState()) {
            long[] seen = {0};
            Prefill.run(m, randomTokens(100, 1), s, 16, n -> seen[0] += n);
            assertEquals(100, seen[0]);
        }
    }

    /** Peak backend memory of a prefill, above what was live before it. */
    private static long peakOfPrefill(CpuBackend be, Rwkv5Model m, int length, int chunk) {
        try (RwkvState s = m.newState()) {
            long before = be.liveBytes();
            be.resetPeakBytes();
            Prefill.run(m, randomTokens(length, length), s, chunk, null);
            return be.peakBytes() - before;
        }
    }

    @Test
    void evalMemoryIsFlatWithLength() {
        ModelConfig cfg = TinyModels.config();
        try (CpuBackend be = new CpuBackend(); Rwkv5Model m = Rwkv5Model.load(be, TinyModels.withMemory(cfg, 3), cfg.groupNormEps())) {
            int chunk = 128;
            long short1k = peakOfPrefill(be, m, 1024, chunk);
            long long16k = peakOfPrefill(be, m, 16 * 1024 + 1, chunk);
            assertTrue(short1k > 0);
            assertEquals(short1k, long16k, "peak backend bytes of a 1k and a 16k prefill in " + chunk + "-token chunks");
            // and it is a chunk's worth, far below what one pass over 16k tokens would hold
            try (RwkvState s = m.newState()) {
                long before = be.liveBytes();
                be.resetPeakBytes();
                m.forward(randomTokens(4096, 9), s, false, false).close();
                long oneShot4k = be.peakBytes() - before;
                assertTrue(oneShot4k > 10 * long16k, "one-shot 4k forward " + oneShot4k + " bytes vs chunked 16k " + long16k);
            }
        }
    }

    @Test
    void aRetrievalTrialUsesTheSameMemoryAtEveryLength(@TempDir Path dir) {
        ModelConfig cfg = TinyModels.config();
        Tokenizer tok = Tokenizers.parse("bytes");
        try (CpuBackend be = new CpuBackend(); Rwkv5Model m = Rwkv5Model.load(be, TinyModels.withMemory(cfg, 3), cfg.groupNormEps());
             RwkvState s0 = m.newState()) {
            long[] peaks = new long[2];
            int[] lengths = {1024, 8192};
            for (int i = 0; i < 2; i++) {
                RetrievalEval.Config c = new RetrievalEval.Config("passkey", new PasskeyTask(tok), Scoring.EXACT_INTEGER,
                        List.of(lengths[i]), new double[]{0}, 1, 1, 8, 256, dir.resolve("run" + i));
                long before = be.liveBytes();
                be.resetPeakBytes();
                RetrievalEval.run(m, s0, tok, c, "tiny", null);
                peaks[i] = be.peakBytes() - before;
            }
            assertEquals(peaks[0], peaks[1], "peak backend bytes of a passkey trial at 1k and 8k tokens");
        }
    }
}
