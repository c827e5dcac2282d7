package ai.longrwkv.core.model;

import ai.longrwkv.core.backend.Backend;
import ai.longrwkv.core.backend.Tensor;
import ai.longrwkv.core.tensor.HostTensor;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The recurrent state of an x052 model, everything the past leaves behind: per layer the att token-shift vector
 * (last LN1 output) [C], the ffn token-shift vector (last LN2 output) [C], and the WKV matrices [H, N(key), N(value)]
 * in fp32 (S[h][i][j] at h*N*N + i*N + j, the rwkv.cpp / rwkv pip package layout, not the CUDA kernels' transposed one).
 * The same class carries state gradients.
 */
public final class RwkvState implements AutoCloseable {
    public final Tensor[] attX, ffnX, wkv;
    private final ModelConfig config;

    private RwkvState(ModelConfig config, Tensor[] attX, Tensor[] ffnX, Tensor[] wkv) {
        this.config = config;
        this.attX = attX;
        this.ffnX = ffnX;
        this.wkv = wkv;
    }

    public static RwkvState zeros(Backend be, ModelConfig c) {
        int L = c.nLayer();
        Tensor[] a = new Tensor[L], f = new Tensor[L], s = new Tensor[L];
        for (int l = 0; l < L; l++) {
            a[l] = be.zeros(c.nEmbd());
            f[l] = be.zeros(c.nEmbd());
            s[l] = be.zeros(c.nHead(), c.headSize(), c.headSize());
        }
        return new RwkvState(c, a, f, s);
    }

    public ModelConfig config() { return config; }

    public RwkvState copy(Backend be) {
        RwkvState out = zeros(be, config);
        out.copyFrom(be, this);
        return out;
    }

    public void copyFrom(Backend be, RwkvState src) {
        for (int l = 0; l < attX.length; l++) {
            be.copy(src.attX[l], attX[l]);
            be.copy(src.ffnX[l], ffnX[l]);
            be.copy(src.wkv[l], wkv[l]);
        }
    }

    public void zero(Backend be) {
        for (int l = 0; l < attX.length; l++) {
            be.fill(attX[l], 0f);
            be.fill(ffnX[l], 0f);
            be.fill(wkv[l], 0f);
        }
    }

    /** Host tensors named {@code <prefix><l>.att_x}, {@code .ffn_x}, {@code .wkv} (the debug-dump names). */
    public Map<String, HostTensor> toHost(Backend be, String prefix) {
        Map<String, HostTensor> out = new LinkedHashMap<>();
        for (int l = 0; l < attX.length; l++) {
            out.put(prefix + l + ".att_x", be.download(attX[l]));
            out.put(prefix + l + ".ffn_x", be.download(ffnX[l]));
            out.put(prefix + l + ".wkv", be.download(wkv[l]));
        }
        return out;
    }

    /** Bytes this state occupies: (2C + H N^2) floats per layer. */
    public static long bytes(ModelConfig c) {
        return 4L * c.nLayer() * (2L * c.nEmbd() + (long) c.nHead() * c.headSize() * c.headSize());
    }

    @Override
    public void close() {
        for (int l = 0; l < attX.length; l++) {
            attX[l].close();
            ffnX[l].close();
            wkv[l].close();
        }
    }
}
