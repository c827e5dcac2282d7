// Elementwise and small row/column kernels of the CUDA backend, fp32. Each mirrors one CpuBackend method; the
// comments name it. Compiled with --fmad=false so that a*b+c rounds twice, exactly as the Java reference does.
// Element counts are 64-bit: a [16384, 65536] logits tensor has more than 2^31 elements.

#include "launch_config.cuh"

#define GRID_STRIDE(i, n) for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n); \
                               i += (long long)blockDim.x * gridDim.x)

__device__ __forceinline__ float sigmoidf_(float x) { return 1.f / (1.f + expf(-x)); }

extern "C" __global__ void fill_f32(float* t, float value, long long n) {
    GRID_STRIDE(i, n) t[i] = value;
}

extern "C" __global__ void scale_f32(float* t, float s, long long n) {
    GRID_STRIDE(i, n) t[i] = t[i] * s;
}

// out may be a or b: every element is read before it is written by the same thread.
extern "C" __global__ void mul_f32(const float* a, const float* b, float* out, long long n) {
    GRID_STRIDE(i, n) out[i] = a[i] * b[i];
}

extern "C" __global__ void add_f32(const float* a, const float* b, float* out, long long n) {
    GRID_STRIDE(i, n) out[i] = a[i] + b[i];
}

extern "C" __global__ void silu_f32(const float* x, float* out, long long n) {
    GRID_STRIDE(i, n) { float xi = x[i]; out[i] = sigmoidf_(xi) * xi; }
}

// dx = dOut * s * (1 + x (1 - s)), s = sigmoid(x)
extern "C" __global__ void silu_backward_f32(const float* x, const float* dOut, float* dx, long long n) {
    GRID_STRIDE(i, n) {
        float xi = x[i], s = sigmoidf_(xi);
        dx[i] = dOut[i] * s * (1.f + xi * (1.f - s));
    }
}

extern "C" __global__ void sigmoid_f32(const float* x, float* out, long long n) {
    GRID_STRIDE(i, n) out[i] = sigmoidf_(x[i]);
}

extern "C" __global__ void sigmoid_backward_f32(const float* s, const float* dOut, float* dx, long long n) {
    GRID_STRIDE(i, n) { float si = s[i]; dx[i] = dOut[i] * si * (1.f - si); }
}

extern "C" __global__ void relu_square_f32(const float* x, float* out, long long n) {
    GRID_STRIDE(i, n) { float a = fmaxf(x[i], 0.f); out[i] = a * a; }
}

extern "C" __global__ void relu_square_backward_f32(const float* x, const float* dOut, float* dx, long long n) {
    GRID_STRIDE(i, n) dx[i] = dOut[i] * 2.f * fmaxf(x[i], 0.f);
}

// w = exp(-exp(timeDecay)), in double like CpuBackend.decay.
extern "C" __global__ void decay_f32(const float* td, float* w, long long n) {
    GRID_STRIDE(i, n) w[i] = (float)exp(-exp((double)td[i]));
}

// dTimeDecay += dw * w * (-exp(timeDecay)); accumulates (CpuBackend.decayBackward).
extern "C" __global__ void decay_backward_f32(const float* td, const float* w, const float* dw, float* dtd, long long n) {
    GRID_STRIDE(i, n) dtd[i] = dtd[i] + (float)((double)dw[i] * (double)w[i] * -exp((double)td[i]));
}

// One torch.optim.AdamW step (CpuBackend.adamwStep, with its subnormal moments stored as 0) on g * gradScale (gradient clipping folded in); stepSize = lr / (1 - b1^step), bc2Sqrt = sqrt(1 - b2^step) and
// decay = 1 - lr*wd are computed once on the host in double and rounded to float, as the CPU code does.
extern "C" __global__ void adamw_f32(float* p, const float* g, float gradScale, float* m, float* v, float beta1, float beta2,
                                     float eps, float stepSize, float bc2Sqrt, float decay, long long n) {
    GRID_STRIDE(i, n) {
        float gi = g[i] * gradScale;
        float mi = beta1 * m[i] + (1.f - beta1) * gi;
        float vi = beta2 * v[i] + (1.f - beta2) * gi * gi;
        // moments below the smallest normal float are stored as 0, as on the CPU (where subnormals are 20x slower)
        if (fabsf(mi) < 1.17549435e-38f) mi = 0.f;
        if (vi < 1.17549435e-38f) vi = 0.f;
        float denom = sqrtf(vi) / bc2Sqrt + eps;
        p[i] = p[i] * decay - stepSize * mi / denom;
        m[i] = mi;
        v[i] = vi;
    }
}

// dst[row*c + i] += src[i] (CpuBackend.addToRow).
extern "C" __global__ void add_to_row_f32(float* dst, const float* src, int row, int c) {
    GRID_STRIDE(i, (long long)c) dst[(long long)row * c + i] += src[i];
}

// out[t] = table[ids[t]]; ids were range-checked on the host.
extern "C" __global__ void embedding_f32(const float* table, const int* ids, float* out, int T, int C) {
    GRID_STRIDE(i, (long long)T * C) {
        long long t = i / C, c = i % C;
        out[i] = table[(long long)ids[t] * C + c];
    }
}

// dTable[ids[t]] += dOut[t]. One thread per column walks t in order: a repeated id adds in the same order every run
// (deterministic, unlike atomicAdd) and in the same order as CpuBackend.embeddingBackward.
extern "C" __global__ void embedding_backward_f32(const float* dOut, const int* ids, float* dTable, int T, int C) {
    GRID_STRIDE(c, (long long)C) {
        for (int t = 0; t < T; t++) {
            float* cell = dTable + (long long)ids[t] * C + c;
            *cell = *cell + dOut[(long long)t * C + c];
        }
    }
}

// out[t] = xx[t] * mix + sx[t] * (1 - mix), sx[0] = prev, sx[t] = xx[t-1]. out must not alias xx.
extern "C" __global__ void token_shift_mix_f32(const float* xx, const float* prev, const float* mix, float* out,
                                               int T, int C) {
    GRID_STRIDE(i, (long long)T * C) {
        long long t = i / C;
        int c = (int)(i % C);
        float m = mix[c];
        float sx = t == 0 ? prev[c] : xx[i - C];
        out[i] = xx[i] * m + sx * (1.f - m);
    }
}

// dxx[t] += dOut[t] * mix + dOut[t+1] * (1 - mix) (the second term only for t < T-1), in the CPU's order.
extern "C" __global__ void token_shift_mix_backward_dx_f32(const float* dOut, const float* mix, float* dxx, int T, int C) {
    GRID_STRIDE(i, (long long)T * C) {
        long long t = i / C;
        int c = (int)(i % C);
        float m = mix[c];
        float acc = dxx[i] + dOut[i] * m;
        if (t + 1 < T) acc = acc + dOut[i + C] * (1.f - m);
        dxx[i] = acc;
    }
}

// dMix[c] += sum_t dOut[t][c] (xx[t][c] - sx[t][c]) (summed in double, in t order); dPrev[c] += dOut[0][c] (1 - mix[c]).
extern "C" __global__ void token_shift_mix_backward_params_f32(const float* dOut, const float* xx, const float* prev,
                                                               const float* mix, float* dPrev, float* dMix, int T, int C) {
    GRID_STRIDE(c, (long long)C) {
        double acc = 0.0;
        float sx = prev[c];
        for (int t = 0; t < T; t++) {
            float cur = xx[(long long)t * C + c];
            acc += (double)(dOut[(long long)t * C + c] * (cur - sx));
            sx = cur;
        }
        dMix[c] = dMix[c] + (float)acc;
        dPrev[c] = dPrev[c] + dOut[c] * (1.f - mix[c]);
    }
}

// Deterministic sum of squares, pass 1: each block writes the double sum of its grid-stride slice to partial[block]
// (a fixed tree inside the block); the host adds the partials in block order (pass 2). Launch with LONGRWKV_SUMSQ_THREADS threads.
extern "C" __global__ void __launch_bounds__(LONGRWKV_SUMSQ_THREADS) sum_squares_partial_f32(const float* x, double* partial, long long n) {
    __shared__ double sh[LONGRWKV_SUMSQ_THREADS];
    if (blockDim.x != LONGRWKV_SUMSQ_THREADS) __trap();   // the tree reduction below assumes it
    double acc = 0.0;
    GRID_STRIDE(i, n) { double v = x[i]; acc += v * v; }
    sh[threadIdx.x] = acc;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) sh[threadIdx.x] += sh[threadIdx.x + s];
        __syncthreads();
    }
    if (threadIdx.x == 0) partial[blockIdx.x] = sh[0];
}
