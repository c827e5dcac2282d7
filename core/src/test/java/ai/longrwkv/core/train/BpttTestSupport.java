package ai.longrwkv.core.train;

import ai.longrwkv.core.backend.Backend;
import ai.longrwkv.core.backend.Tensor;
import ai.longrwkv.core.model.ModelConfig;
import ai.longrwkv.core.model.ParamSet;
import ai.longrwkv.core.model.Rwkv5Model;
import ai.longrwkv.core.model.RwkvState;
import ai.longrwkv.core.tensor.HostTensor;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;

/** Shared pieces of the BPTT tests: a tiny model shape, random sequences, tensor arithmetic on host copies. */
final class BpttTestSupport {
    /** L=2, C=16, H=2 heads of N=8, F=32, V=23; official ln_x eps. */
    static final ModelConfig TINY = new ModelConfig(2, 16, 2, 8, 32, 23, ModelConfig.OFFICIAL_GROUP_NORM_EPS);

    private BpttTestSupport() { }

    /** Random tokens, next-token targets, and a mask with some zeros (like masked prompt turns). */
    static TokenSequence randomSequence(int length, int vocab, long seed) {
        Random rnd = new Random(seed);
        int[] tokens = new int[length];
        for (int t = 0; t < length; t++) tokens[t] = rnd.nextInt(vocab);
        TokenSequence s = TokenSequence.nextToken(tokens);
        float[] mask = s.mask().clone();
        for (int t = 0; t < length; t++) if (rnd.nextInt(4) == 0) mask[t] = 0f;
        return new TokenSequence(s.tokens(), s.targets(), mask);
    }

    /** The tensors of a state, in a fixed order, with names. */
    static List<Tensor> stateTensors(RwkvState s) {
        List<Tensor> out = new ArrayList<>();
        for (int l = 0; l < s.attX.length; l++) {
            out.add(s.attX[l]);
            out.add(s.ffnX[l]);
            out.add(s.wkv[l]);
        }
        return out;
    }

    static List<String> stateNames(int layers) {
        List<String> out = new ArrayList<>();
        for (int l = 0; l < layers; l++) {
            out.add("state." + l + ".att_x");
            out.add("state." + l + ".ffn_x");
            out.add("state." + l + ".wkv");
        }
        return out;
    }

    /** t += h * d (through a host copy). */
    static void addScaled(Backend be, Tensor t, float[] d, double h) {
        HostTensor x = be.download(t);
        for (int i = 0; i < d.length; i++) x.data()[i] += (float) (h * d[i]);
        try (Tensor u = be.upload(x)) {
            be.copy(u, t);
        }
    }

    static void set(Backend be, Tensor t, float[] values) {
        try (Tensor u = be.upload(new HostTensor(t.shape(), values.clone()))) {
            be.copy(u, t);
        }
    }

    static double dot(float[] a, float[] b) {
        double s = 0;
        for (int i = 0; i < a.length; i++) s += (double) a[i] * b[i];
        return s;
    }

    static double norm(float[] a) {
        return Math.sqrt(dot(a, a));
    }

    /** max |a - b| / max |a| (a is the reference). */
    static double relMaxDiff(float[] a, float[] b) {
        double m = 0, d = 0;
        for (int i = 0; i < a.length; i++) {
            m = Math.max(m, Math.abs(a[i]));
            d = Math.max(d, Math.abs(a[i] - b[i]));
        }
        return m == 0 ? d : d / m;
    }

    /**
     * A unit direction mostly along the gradient g (so that the directional derivative is about |g|, well above
     * finite-difference noise) plus a random part (so that a wrong gradient cannot agree by construction).
     */
    static float[] probeDirection(float[] g, Random rnd) {
        float[] d = new float[g.length];
        double gn = norm(g);
        double[] r = new double[g.length];
        double rn = 0;
        for (int i = 0; i < g.length; i++) { r[i] = rnd.nextGaussian(); rn += r[i] * r[i]; }
        rn = Math.sqrt(rn);
        for (int i = 0; i < g.length; i++) d[i] = (float) ((gn > 0 ? g[i] / gn : 0) + 0.7 * r[i] / rn);
        double dn = norm(d);
        for (int i = 0; i < d.length; i++) d[i] /= (float) dn;
        return d;
    }

    static ParamSet zeroGrads(Rwkv5Model m) {
        return ParamSet.zeros(m.backend(), m.config());
    }

    /** The loss, every parameter gradient and the initial-state gradient of one sequence, as host arrays by name. */
    record Grads(double loss, java.util.Map<String, float[]> byName) { }

    static Grads grads(Rwkv5Model model, TokenSequence seq, RwkvState s0, int chunk, BpttMode mode, boolean l2Wrap) {
        Backend be = model.backend();
        try (ParamSet g = zeroGrads(model)) {
            ChunkedBptt.Result r = ChunkedBptt.run(model, seq, s0, g, new ChunkedBptt.Options(chunk, mode, l2Wrap), true, null);
            java.util.Map<String, float[]> out = new java.util.LinkedHashMap<>();
            for (String k : g.keys()) out.put(k, be.download(g.get(k)).data());
            List<Tensor> st = stateTensors(r.initialStateGrad());
            List<String> names = stateNames(model.config().nLayer());
            for (int i = 0; i < st.size(); i++) out.put(names.get(i), be.download(st.get(i)).data());
            r.finalState().close();
            r.initialStateGrad().close();
            return new Grads(r.loss(), out);
        }
    }
}
