package ai.longrwkv.core.model;

import ai.longrwkv.core.backend.cpu.CpuBackend;
import ai.longrwkv.core.io.ModelFiles;
import ai.longrwkv.core.testing.TestModels;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The forward pass against rwkv.cpp's own logits for its tiny x052 model (rwkv5-spec.md §7). */
class OracleForwardTest {
    static final int[] IN = {34, 105, 110};   // the bytes of "in (with the quote)
    static final String SEQ32 = "\"in the middle of the night, the";

    private static float[] lastRow(float[] logits, int rows, int v) {
        return Arrays.copyOfRange(logits, (rows - 1) * v, rows * v);
    }

    private void checkExpected(String file, double tol) throws Exception {
        var weights = ModelFiles.load(TestModels.oracle(file));
        assertEquals(1e-5, weights.impliedGroupNormEps(), 0.0, "rwkv.cpp files imply ln_x eps 1e-5");
        float[] expected = TestModels.readFloats(TestModels.oracle("expected-logits-5v2-730K.bin"));
        try (var be = new CpuBackend(); var model = Rwkv5Model.load(be, weights, weights.impliedGroupNormEps());
             var state = model.newState()) {
            ModelConfig c = model.config();
            assertEquals(12, c.nLayer());
            assertEquals(8, c.headSize(), "head size derived from time_decay, not assumed");
            try (var acts = model.forward(IN, state, false, true)) {
                float[] got = lastRow(be.download(acts.logits()).data(), IN.length, c.vocabSize());
                double d = TestModels.maxAbsDiff(got, expected, 0);
                assertTrue(d <= tol, file + ": max |logit - rwkv.cpp| = " + d + " > " + tol);
            }
            // the same three tokens one RNN step at a time
            try (var s2 = model.newState()) {
                float[] got = null;
                for (int tok : IN) got = model.step(tok, s2);
                double d = TestModels.maxAbsDiff(got, expected, 0);
                assertTrue(d <= tol, file + " token by token: max diff " + d);
            }
        }
    }

    @Test
    void fp32MatchesRwkvCpp() throws Exception {
        checkExpected("tiny-rwkv-5v2-730K-FP32.bin", 1e-4);
    }

    @Test
    void fp16MatchesRwkvCpp() throws Exception {
        checkExpected("tiny-rwkv-5v2-730K-FP16.bin", 5e-3);
    }

    @Test
    void officialEpsWouldNotMatch() throws Exception {
        // Guards the test itself: with eps 64e-5 the logits are off by about 1 (spec §7), so the eps really matters.
        var weights = ModelFiles.load(TestModels.oracle("tiny-rwkv-5v2-730K-FP32.bin"));
        float[] expected = TestModels.readFloats(TestModels.oracle("expected-logits-5v2-730K.bin"));
        try (var be = new CpuBackend(); var model = Rwkv5Model.load(be, weights, ModelConfig.OFFICIAL_GROUP_NORM_EPS);
             var state = model.newState(); var acts = model.forward(IN, state, false, true)) {
            float[] got = lastRow(be.download(acts.logits()).data(), IN.length, 256);
            assertTrue(TestModels.maxAbsDiff(got, expected, 0) > 0.1);
        }
    }

    @Test
    void all32RowsMatchDerivedLogits() throws Exception {
        byte[] bytes = SEQ32.getBytes(StandardCharsets.UTF_8);
        assertEquals(32, bytes.length);
        int[] tokens = new int[32];
        for (int i = 0; i < 32; i++) tokens[i] = bytes[i] & 0xff;
        float[] expected = TestModels.readFloats(TestModels.oracle("derived-logits-5v2-730K-FP32-seq32.bin"));
        var weights = ModelFiles.load(TestModels.oracle("tiny-rwkv-5v2-730K-FP32.bin"));
        try (var be = new CpuBackend(); var model = Rwkv5Model.load(be, weights, 1e-5)) {
            float[] oneShot;
            try (var state = model.newState(); var acts = model.forward(tokens, state, false, true)) {
                oneShot = be.download(acts.logits()).data();
            }
            for (int t = 0; t < 32; t++) {
                double d = TestModels.maxAbsDiff(Arrays.copyOfRange(oneShot, t * 256, (t + 1) * 256), expected, t * 256);
                assertTrue(d <= 1e-4, "row " + t + ": max diff " + d);
            }
            try (var state = model.newState()) {
                for (int t = 0; t < 32; t++) {
                    float[] row = model.step(tokens[t], state);
                    double d = TestModels.maxAbsDiff(row, expected, t * 256);
                    assertTrue(d <= 1e-4, "step " + t + ": max diff " + d);
                }
            }
        }
    }
}
