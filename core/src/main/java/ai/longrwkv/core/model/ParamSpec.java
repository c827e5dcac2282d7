package ai.longrwkv.core.model;

import java.util.ArrayList;
import java.util.List;

/**
 * One parameter of an x052 model: its .pth state-dict key and shape (rwkv5-spec.md §1), and the role the model code
 * gives it. {@link #all} lists them in RWKV-LM's state-dict order.
 */
public record ParamSpec(String key, int[] shape, int layer, Kind kind) {

    public enum Kind {
        EMB, LN0_W, LN0_B, LN1_W, LN1_B, LN2_W, LN2_B,
        ATT_MIX_K, ATT_MIX_V, ATT_MIX_R, ATT_MIX_G, ATT_DECAY, ATT_FAAAA,
        ATT_R, ATT_K, ATT_V, ATT_O, ATT_LNX_W, ATT_LNX_B, ATT_G,
        FFN_MIX_K, FFN_MIX_R, FFN_K, FFN_R, FFN_V,
        LN_OUT_W, LN_OUT_B, HEAD
    }

    public static List<ParamSpec> all(ModelConfig c) {
        int C = c.nEmbd(), H = c.nHead(), N = c.headSize(), F = c.dimFfn(), V = c.vocabSize();
        List<ParamSpec> out = new ArrayList<>();
        out.add(new ParamSpec("emb.weight", new int[]{V, C}, -1, Kind.EMB));
        for (int l = 0; l < c.nLayer(); l++) {
            String p = "blocks." + l + ".";
            out.add(new ParamSpec(p + "ln1.weight", new int[]{C}, l, Kind.LN1_W));
            out.add(new ParamSpec(p + "ln1.bias", new int[]{C}, l, Kind.LN1_B));
            out.add(new ParamSpec(p + "ln2.weight", new int[]{C}, l, Kind.LN2_W));
            out.add(new ParamSpec(p + "ln2.bias", new int[]{C}, l, Kind.LN2_B));
            if (l == 0) {
                out.add(new ParamSpec(p + "ln0.weight", new int[]{C}, l, Kind.LN0_W));
                out.add(new ParamSpec(p + "ln0.bias", new int[]{C}, l, Kind.LN0_B));
            }
            out.add(new ParamSpec(p + "att.time_mix_k", new int[]{1, 1, C}, l, Kind.ATT_MIX_K));
            out.add(new ParamSpec(p + "att.time_mix_v", new int[]{1, 1, C}, l, Kind.ATT_MIX_V));
            out.add(new ParamSpec(p + "att.time_mix_r", new int[]{1, 1, C}, l, Kind.ATT_MIX_R));
            out.add(new ParamSpec(p + "att.time_mix_g", new int[]{1, 1, C}, l, Kind.ATT_MIX_G));
            out.add(new ParamSpec(p + "att.time_decay", new int[]{H, N}, l, Kind.ATT_DECAY));
            out.add(new ParamSpec(p + "att.time_faaaa", new int[]{H, N}, l, Kind.ATT_FAAAA));
            out.add(new ParamSpec(p + "att.receptance.weight", new int[]{C, C}, l, Kind.ATT_R));
            out.add(new ParamSpec(p + "att.key.weight", new int[]{C, C}, l, Kind.ATT_K));
            out.add(new ParamSpec(p + "att.value.weight", new int[]{C, C}, l, Kind.ATT_V));
            out.add(new ParamSpec(p + "att.output.weight", new int[]{C, C}, l, Kind.ATT_O));
            out.add(new ParamSpec(p + "att.gate.weight", new int[]{C, C}, l, Kind.ATT_G));
            out.add(new ParamSpec(p + "att.ln_x.weight", new int[]{C}, l, Kind.ATT_LNX_W));
            out.add(new ParamSpec(p + "att.ln_x.bias", new int[]{C}, l, Kind.ATT_LNX_B));
            out.add(new ParamSpec(p + "ffn.time_mix_k", new int[]{1, 1, C}, l, Kind.FFN_MIX_K));
            out.add(new ParamSpec(p + "ffn.time_mix_r", new int[]{1, 1, C}, l, Kind.FFN_MIX_R));
            out.add(new ParamSpec(p + "ffn.key.weight", new int[]{F, C}, l, Kind.FFN_K));
            out.add(new ParamSpec(p + "ffn.receptance.weight", new int[]{C, C}, l, Kind.FFN_R));
            out.add(new ParamSpec(p + "ffn.value.weight", new int[]{C, F}, l, Kind.FFN_V));
        }
        out.add(new ParamSpec("ln_out.weight", new int[]{C}, -1, Kind.LN_OUT_W));
        out.add(new ParamSpec("ln_out.bias", new int[]{C}, -1, Kind.LN_OUT_B));
        out.add(new ParamSpec("head.weight", new int[]{V, C}, -1, Kind.HEAD));
        return out;
    }
}
