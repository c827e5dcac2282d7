package ai.longrwkv.core.backend;

import ai.longrwkv.core.tensor.DType;
import ai.longrwkv.core.tensor.HostTensor;

/**
 * The one seam between the model and the hardware. The x052 model, its backward pass and the chunked BPTT engine are
 * written once against these operations; a backend only does arithmetic on tensors it owns (no model logic lives here).
 *
 * <p>Conventions: tensors are row-major; an op that works on "rows" sees a tensor as [size / lastDim, lastDim].
 * Ops whose doc says "accumulates" add into their output (gradients are summed over chunks and over uses); all
 * others overwrite. WKV states are [H, N(key), N(value)]: S[h][i][j] at h*N*N + i*N + j.
 *
 * <p>Dtypes: every op takes and gives float32 tensors, except where its doc says otherwise: {@link #matmul} and
 * {@link #embedding} also read bf16 inputs (weights; fp32 accumulation, fp32 output), {@link #wkvForward} and
 * {@link #wkvBackward} read r, k, v, u in bf16 (all four; w, the state and every output stay fp32), and {@link #copy},
 * {@link #upload} and {@link #download} convert. An op given a dtype it does not take throws, naming the op and the
 * tensor. (The model's choice of which tensors are bf16: {@link ai.longrwkv.core.model.Precision}.)
 */
public interface Backend extends AutoCloseable {

    String name();

    // ---------------------------------------------------------------- memory
    /** A float32 tensor of zeros. */
    default Tensor zeros(int... shape) { return zeros(DType.F32, shape); }

    Tensor zeros(DType dtype, int... shape);

    /**
     * A float32 tensor whose contents are unspecified: for outputs that the next op writes completely (activations,
     * logits), so that the CPU does not clear hundreds of MB a step only to overwrite them. A backend may return
     * zeros; the CPU backend fills it with NaN when the system property {@code longrwkv.cpu.poisonEmpty} is true
     * (the test suite sets it), so that an op that reads what it should have written shows up as NaN.
     */
    default Tensor empty(int... shape) { return empty(DType.F32, shape); }

    /** As {@link #empty(int...)} in the given dtype. */
    default Tensor empty(DType dtype, int... shape) { return zeros(dtype, shape); }

    /** A float32 copy of host data. */
    default Tensor upload(HostTensor host) { return upload(host, DType.F32); }

    /** A copy of host data in the given dtype (bf16: each value rounded to nearest even). */
    Tensor upload(HostTensor host, DType dtype);

    /**
     * Writes host values into part of a tensor: elements [dstOffset, dstOffset + count) of dst (row-major) become
     * src[srcOffset, srcOffset + count), converted to dst's dtype (bf16: rounded to nearest even). How a model file is
     * uploaded a block at a time ({@link ai.longrwkv.core.model.ParamSet#upload}), never whole in Java memory.
     */
    void write(Tensor dst, long dstOffset, float[] src, int srcOffset, int count);

    /**
     * The reverse of {@link #write}: dst[dstOffset, dstOffset + count) become elements [srcOffset, srcOffset + count)
     * of src as float32 (bf16 widens exactly). How a checkpoint is written a block at a time
     * ({@link ai.longrwkv.core.model.ModelWeights#ofTensor}).
     */
    void read(Tensor src, long srcOffset, float[] dst, int dstOffset, int count);

    /** The bounds {@link #write} and {@link #read} require (a range of the tensor, one of the array), checked alike by every backend. */
    static void checkTransfer(Tensor t, long tensorOffset, float[] array, int arrayOffset, int count) {
        if (count < 0 || tensorOffset < 0 || tensorOffset + count > t.size() || arrayOffset < 0 || arrayOffset + count > array.length) {
            throw new IllegalArgumentException("transfer of " + count + " values between elements " + arrayOffset + ".. of an array of "
                    + array.length + " and elements " + tensorOffset + ".. of " + t.describe());
        }
    }

    /** The tensor's values as float32 (bf16 widens exactly). */
    HostTensor download(Tensor t);

    /** dst = src, element by element; the sizes must match, the dtypes may differ (fp32 to bf16 rounds to nearest even). */
    void copy(Tensor src, Tensor dst);

    /**
     * A view of rows [first, first + count) of t seen as [rows, cols]: shape [count, cols], same dtype, sharing t's
     * memory (writes go to t). Closing it frees nothing; it must not be used after t is closed.
     */
    Tensor rows(Tensor t, int first, int count);

    void fill(Tensor t, float value);

    /** Bytes held by open tensors of this backend. */
    long liveBytes();

    /** Highest {@link #liveBytes()} since the last {@link #resetPeakBytes()}. */
    long peakBytes();

    void resetPeakBytes();

    /** Memory the backend's tensors can use in all (a GPU's total memory), or -1 when it is the host's (the CPU). */
    default long memoryCapacity() { return -1; }

    // ---------------------------------------------------------------- linear algebra
    /**
     * c = alpha * op(a) @ op(b) + beta * c for 2-D views (a [M,K] or, transposed, [K,M]; b [K,N] or [N,K]).
     * A Linear layer y = x W^T is matmul(x, false, W, true, y, 1, 0). a and b may be fp32 or bf16 (each
     * independently), c is fp32; products accumulate in fp32 at least. With a bf16 operand a backend may also round
     * the other operand to bf16 (tensor cores take both in one type), so a bf16 product is accurate to bf16 inputs.
     */
    void matmul(Tensor a, boolean transA, Tensor b, boolean transB, Tensor c, float alpha, float beta);

    // ---------------------------------------------------------------- embedding
    /** out[t] = table[ids[t]]; the table may be fp32 or bf16, out is fp32. */
    void embedding(Tensor table, int[] ids, Tensor out);

    /** dTable[ids[t]] += dOut[t]; accumulates. */
    void embeddingBackward(Tensor dOut, int[] ids, Tensor dTable);

    // ---------------------------------------------------------------- normalisation
    /**
     * Group normalisation of each row of x in {@code groups} equal parts (groups = 1 is LayerNorm):
     * out = (x - mean) * rstd * w + b with biased variance; saves mean and rstd [rows * groups].
     */
    void norm(Tensor x, Tensor w, Tensor b, int groups, float eps, Tensor out, Tensor mean, Tensor rstd);

    /** Backward of {@link #norm}: dx accumulates, dw and db accumulate. */
    void normBackward(Tensor dOut, Tensor x, Tensor w, int groups, Tensor mean, Tensor rstd, Tensor dx, Tensor dw, Tensor db);

    // ---------------------------------------------------------------- token shift
    /** out[t] = xx[t] * mix + sx[t] * (1 - mix) with sx[0] = prev, sx[t] = xx[t-1]; mix and prev have C values. */
    void tokenShiftMix(Tensor xx, Tensor prev, Tensor mix, Tensor out);

    /** Backward of {@link #tokenShiftMix}: dxx, dPrev and dMix accumulate. */
    void tokenShiftMixBackward(Tensor dOut, Tensor xx, Tensor prev, Tensor mix, Tensor dxx, Tensor dPrev, Tensor dMix);

    /** dst = the given row of src (C values). */
    void copyRow(Tensor src, int row, Tensor dst);

    /** dst[row] += src (C values). */
    void addToRow(Tensor dst, int row, Tensor src);

    // ---------------------------------------------------------------- WKV (RWKV-5 linear attention)
    /** w = exp(-exp(timeDecay)), elementwise. */
    void decay(Tensor timeDecay, Tensor w);

    /** dTimeDecay += dw * w * (-exp(timeDecay)); accumulates. */
    void decayBackward(Tensor timeDecay, Tensor w, Tensor dw, Tensor dTimeDecay);

    /**
     * WKV recurrence over T steps for all heads: r, k, v, y [T, H*N]; w, u [H, N]; state [H, N, N] is the state before
     * step 0 on entry and the state after step T-1 on return. Per head: y_t = r_t^T (diag(u) k_t v_t^T + S_t),
     * S_{t+1} = diag(w) S_t + k_t v_t^T. r, k, v, u are all fp32 or all bf16 (a GPU then runs the tensor-core kernels);
     * w, the state and y are fp32.
     */
    void wkvForward(Tensor r, Tensor k, Tensor v, Tensor w, Tensor u, Tensor state, Tensor y);

    /**
     * Backward of {@link #wkvForward} started from state0. dState holds dL/dS_T on entry (zeros when nothing follows)
     * and dL/dS_0 on return. dr, dk, dv are overwritten; dw (gradient w.r.t. the decay factor w) and du accumulate.
     * r, k, v, u as in {@link #wkvForward}; every gradient is fp32.
     */
    void wkvBackward(Tensor r, Tensor k, Tensor v, Tensor w, Tensor u, Tensor state0, Tensor dy,
                     Tensor dState, Tensor dr, Tensor dk, Tensor dv, Tensor dw, Tensor du);

    // ---------------------------------------------------------------- elementwise
    void silu(Tensor x, Tensor out);

    /** dx = dOut * d silu(x)/dx; overwrites. */
    void siluBackward(Tensor x, Tensor dOut, Tensor dx);

    void sigmoid(Tensor x, Tensor out);

    /** dx = dOut * s * (1 - s) with s = sigmoid output; overwrites. */
    void sigmoidBackward(Tensor s, Tensor dOut, Tensor dx);

    /** out = relu(x)^2. */
    void reluSquare(Tensor x, Tensor out);

    /** dx = dOut * 2 relu(x); overwrites. */
    void reluSquareBackward(Tensor x, Tensor dOut, Tensor dx);

    /** out = a * b elementwise (out may be a or b). */
    void mul(Tensor a, Tensor b, Tensor out);

    /** out = a + b elementwise (out may be a or b). */
    void add(Tensor a, Tensor b, Tensor out);

    /** t *= s. */
    void scale(Tensor t, float s);

    /** Sum of squares, in double. */
    double sumOfSquares(Tensor t);

    // ---------------------------------------------------------------- optimizer
    /**
     * One AdamW step exactly as torch.optim.AdamW computes it, in place on param and the moments m, v, with
     * g = grad * gradScale (in float: gradient clipping's factor, 1 for none; grad itself is left as it is):
     * p *= 1 - lr*wd; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
     * p -= lr / (1 - b1^step) * m / (sqrt(v) / sqrt(1 - b2^step) + eps). step counts from 1. One difference: a new
     * m or v whose magnitude is below the smallest normal float (1.18e-38) is stored, and used, as 0 (subnormal
     * arithmetic is 20x slower on CPUs; the update it would have made is below lr * 1e-38 / eps).
     * Returns the sum of squares of the updated param in double (not finite if the update overflowed it), so that
     * neither the clipping nor the overflow check needs a pass of its own over the parameters.
     */
    double adamwStep(Tensor param, Tensor grad, float gradScale, Tensor m, Tensor v, float lr, float beta1, float beta2,
                     float eps, float weightDecay, long step);

    // ---------------------------------------------------------------- loss
    /**
     * Cross-entropy of each row of logits [T, V] against targets[t] (negative = no target), weighted by weights[t].
     * Returns sum_t weights[t] * (-log softmax(logits[t])[targets[t]]) in double. If dLogits is not null (it may be the
     * logits tensor itself) it receives weights[t] * (softmax - onehot) and, when l2WrapFactor > 0, RWKV-LM's L2Wrap
     * term: at each row's argmax, + l2WrapFactor * max logit (every row, target or not).
     */
    double crossEntropy(Tensor logits, int[] targets, float[] weights, float l2WrapFactor, Tensor dLogits);

    // ---------------------------------------------------------------- several devices
    /**
     * A new group id for {@link #communicator} (ncclGetUniqueId): made once by rank 0 and handed to every other rank
     * (threads of this process, or other nodes over the rendezvous socket).
     */
    default byte[] newCommunicatorId() {
        throw new IllegalArgumentException("training on several devices needs the CUDA backend (--device cuda, or emulated); this is " + name());
    }

    /**
     * Joins the group {@code id} as {@code rank} of {@code size} on this backend's device (ncclCommInitRank): returns
     * when all ranks have joined, or throws {@link ai.longrwkv.core.dist.CollectiveException} after {@code timeoutMillis}.
     */
    default ai.longrwkv.core.dist.Communicator communicator(byte[] id, int rank, int size, long timeoutMillis) {
        throw new IllegalArgumentException("training on several devices needs the CUDA backend (--device cuda, or emulated); this is " + name());
    }

    @Override
    void close();
}
