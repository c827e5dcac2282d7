package ai.longrwkv.core.model;

import ai.longrwkv.core.tensor.DType;

/**
 * Which tensors of a run live in bf16 and which stay fp32: the one place that decides it (issue 11), and why.
 *
 * <p>With {@code --dtype bf16}:
 * <ul>
 *   <li><b>Weight matrices</b> (emb, head, att.receptance/key/value/gate/output, ffn.key/receptance/value: 99.9% of the
 *       parameters) are stored in bf16 when they are not trained (LoRA, state tuning, eval, generation). They are only
 *       ever read by matrix products and the embedding lookup. A product with a bf16 operand multiplies bf16 by bf16
 *       and accumulates in fp32, its fp32 operand rounded to bf16 first: tensor cores on a GPU (cublasGemmEx), oneDNN
 *       on a CPU with AVX512-BF16 or AMX (about twice the fp32 sgemm rate); a CPU without bf16 instructions widens the
 *       bf16 weight exactly into the fp32 sgemm instead (CpuBackend.Bf16Products). Halves the model: 7.5B parameters
 *       are 15 GB instead of 30.</li>
 *   <li><b>Full finetuning</b> keeps an fp32 master copy of every trained parameter and fp32 AdamW moments; the
 *       matrix products read a bf16 working copy refreshed from the master after each step (mixed precision as
 *       DeepSpeed's bf16 mode and RWKV-LM run it). A bf16 master would lose updates smaller than 2^-8 of a weight.
 *       All three products of such a layer run in bf16 with fp32 accumulation, the weight gradient dOut^T x included
 *       (as under PyTorch's autocast): without it a third of a step's FLOPs would stay fp32; the gradient itself is
 *       accumulated and applied in fp32.</li>
 *   <li><b>Small parameters</b> (LayerNorm/GroupNorm weights and biases, token-shift mixes, time_decay, time_faaaa:
 *       0.1%) stay fp32: they feed the state update and the norms directly, and time_decay in particular sets
 *       w = exp(-exp(d)), which sits within 1e-4 of 1 on long-memory channels: in bf16 (8 significant bits) every such
 *       w would round to exactly 1 or to 1 - 2^-8, i.e. to "never forget" or to a 256-token memory ("everything in the
 *       state update must be fp32 because w can be very close to 1", RWKV-LM's own note on its CUDA kernel).</li>
 *   <li><b>The WKV state</b>, its gradient, the boundary states kept between chunks, the tuned state, norm statistics,
 *       losses, gradients and every reduction stay fp32 for the same reason: errors there compound over every token
 *       of a 128k context.</li>
 *   <li><b>r, k, v and u</b>, the WKV's inputs, are rounded to bf16 after their projections (as RWKV-LM's bf16 kernel
 *       takes them), kept so for backward, and read by the tensor-core WKV kernels on a GPU; the CPU widens them back
 *       exactly (its WKV computes in fp32). Forward, recomputation and backward all see the same rounded values; the rounding itself is passed
 *       through as the identity in backward (as a cast is in PyTorch's autograd).</li>
 *   <li><b>The other activations</b> stay fp32: the residual stream x and the LayerNorm inputs accumulate over the
 *       layers (rounding them would move every later layer), and the rest feed weight-gradient products. With
 *       {@code --grad-cp} only each layer's input is kept across the chunk, so they are a small term of the plan for
 *       the shapes that need memory most.</li>
 * </ul>
 */
public final class Precision {
    private Precision() { }

    /** Whether a parameter is a weight matrix (read only by matmul or the embedding lookup). */
    public static boolean isMatrix(ParamSpec spec) {
        return switch (spec.kind()) {
            case EMB, HEAD, ATT_R, ATT_K, ATT_V, ATT_O, ATT_G, FFN_K, FFN_R, FFN_V -> true;
            default -> false;
        };
    }

    /**
     * The dtype a run loads its weight matrices in: {@code precision} where they are frozen; fp32 when they are
     * trained (the master copy; {@link #configure} adds the working copy).
     */
    public static DType loadDtype(DType precision, boolean trainsMatrices) {
        return trainsMatrices ? DType.F32 : precision;
    }

    /** Applies a run's precision (a bf16 working copy when the matrices are trained) and --grad-cp to a loaded model. */
    public static void configure(Rwkv5Model model, DType precision, boolean trainsMatrices, boolean gradCp) {
        if (trainsMatrices && precision == DType.BF16) model.useWorkingCopy(DType.BF16);
        model.setRecompute(gradCp);
    }

    /** The dtype a parameter is stored in when the run's weight dtype is {@code weights}. */
    public static DType storage(ParamSpec spec, DType weights) {
        return isMatrix(spec) ? weights : DType.F32;
    }
}
