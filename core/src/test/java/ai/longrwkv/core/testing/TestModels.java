package ai.longrwkv.core.testing;

import ai.longrwkv.core.backend.Backend;
import ai.longrwkv.core.model.ModelConfig;
import ai.longrwkv.core.model.ModelWeights;
import ai.longrwkv.core.model.ParamSpec;
import ai.longrwkv.core.model.RwkvState;
import ai.longrwkv.core.tensor.HostTensor;
import org.junit.jupiter.api.Assumptions;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;

/** Small random models and states for tests, and the path of the shared oracle files. */
public final class TestModels {
    private TestModels() { }

    /**
     * A model whose every parameter is random and non-zero (unlike the x052 init, which zeroes the output
     * projections), so that every gradient path carries signal in finite-difference checks.
     */
    public static ModelWeights random(ModelConfig cfg, long seed) {
        Random rnd = new Random(seed);
        Map<String, HostTensor> m = new LinkedHashMap<>();
        for (ParamSpec p : ParamSpec.all(cfg)) {
            HostTensor t = HostTensor.zeros(p.shape());
            float[] d = t.data();
            for (int i = 0; i < d.length; i++) {
                double g = rnd.nextGaussian();
                d[i] = (float) switch (p.kind()) {
                    case ATT_MIX_K, ATT_MIX_V, ATT_MIX_R, ATT_MIX_G, FFN_MIX_K, FFN_MIX_R -> 0.2 + 0.6 * rnd.nextDouble();
                    case ATT_DECAY -> -2.0 + 1.5 * rnd.nextDouble();   // w between about 0.2 and 0.9
                    case ATT_FAAAA -> 0.5 * g;
                    case LN0_W, LN1_W, LN2_W, LN_OUT_W, ATT_LNX_W -> 1.0 + 0.2 * g;
                    case LN0_B, LN1_B, LN2_B, LN_OUT_B, ATT_LNX_B -> 0.1 * g;
                    case EMB -> g;
                    default -> g / Math.sqrt(p.shape()[1]);       // Linear [out, in]
                };
            }
            m.put(p.key(), t);
        }
        return new ModelWeights(m, "random(seed=" + seed + ")", cfg.groupNormEps());
    }

    /** A random state (all parts non-zero). */
    public static RwkvState randomState(Backend be, ModelConfig cfg, long seed) {
        Random rnd = new Random(seed);
        RwkvState s = RwkvState.zeros(be, cfg);
        for (int l = 0; l < cfg.nLayer(); l++) {
            fill(be, s.attX[l], rnd, 1.0);
            fill(be, s.ffnX[l], rnd, 1.0);
            fill(be, s.wkv[l], rnd, 0.5);
        }
        return s;
    }

    private static void fill(Backend be, ai.longrwkv.core.backend.Tensor t, Random rnd, double scale) {
        HostTensor h = be.download(t);
        for (int i = 0; i < h.size(); i++) h.data()[i] = (float) (scale * rnd.nextGaussian());
        try (var u = be.upload(h)) {
            be.copy(u, t);
        }
    }

    /** shared/oracle/NAME found by walking up from the working directory; the test is skipped when it is absent. */
    public static Path oracle(String name) {
        for (Path dir = Paths.get("").toAbsolutePath(); dir != null; dir = dir.getParent()) {
            Path candidate = dir.resolve("shared").resolve("oracle").resolve(name);
            if (Files.isRegularFile(candidate)) return candidate;
        }
        Assumptions.assumeTrue(false, "shared/oracle/" + name + " not found above " + Paths.get("").toAbsolutePath());
        return null;
    }

    public static float[] readFloats(Path file) throws java.io.IOException {
        java.nio.ByteBuffer b = java.nio.ByteBuffer.wrap(Files.readAllBytes(file)).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        float[] out = new float[b.remaining() / 4];
        b.asFloatBuffer().get(out);
        return out;
    }

    public static double maxAbsDiff(float[] a, float[] b, int bOffset) {
        double m = 0;
        for (int i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[bOffset + i]));
        return m;
    }
}
