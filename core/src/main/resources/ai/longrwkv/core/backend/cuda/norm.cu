#include "launch_config.cuh"

// Group normalisation (groups = 1 is LayerNorm) forward and backward, fp32 data with double sums like
// CpuBackend.norm / normBackward. Compiled with --fmad=false (two roundings per a*b+c, as in Java).

// Block-wide double sum of one value per thread (blockDim.x is a power of two, at most 256); every thread gets it.
__device__ double block_sum(double v, double* sh) {
    if (blockDim.x > LONGRWKV_NORM_MAX_THREADS || (blockDim.x & (blockDim.x - 1)) != 0) __trap();
    sh[threadIdx.x] = v;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) sh[threadIdx.x] += sh[threadIdx.x + s];
        __syncthreads();
    }
    double total = sh[0];
    __syncthreads();   // sh is reused by the next call
    return total;
}

// One block per (row, group): blockIdx.x = row * groups + q. Saves mean and rstd [rows * groups].
extern "C" __global__ void __launch_bounds__(LONGRWKV_NORM_MAX_THREADS) norm_forward_f32(const float* x, const float* w, const float* b, float* out, float* mean,
                                            float* rstd, int C, int groups, float eps) {
    __shared__ double sh[LONGRWKV_NORM_MAX_THREADS];
    const int g = C / groups;
    const long long rowGroup = blockIdx.x;
    const int q = (int)(rowGroup % groups);
    const long long base = (rowGroup / groups) * C + (long long)q * g;
    double sum = 0.0;
    for (int i = threadIdx.x; i < g; i += blockDim.x) sum += x[base + i];
    const double m = block_sum(sum, sh) / g;
    double var = 0.0;
    for (int i = threadIdx.x; i < g; i += blockDim.x) { double d = x[base + i] - m; var += d * d; }
    var = block_sum(var, sh);
    const float s = (float)(1.0 / sqrt(var / g + (double)eps));
    const float mf = (float)m;
    for (int i = threadIdx.x; i < g; i += blockDim.x) {
        int c = q * g + i;
        out[base + i] = (x[base + i] - mf) * s * w[c] + b[c];
    }
    if (threadIdx.x == 0) { mean[rowGroup] = mf; rstd[rowGroup] = s; }
}

// dx (accumulates): per (row, group) block, dx += s (dy w - mean(dy w) - xhat mean(dy w xhat)).
extern "C" __global__ void __launch_bounds__(LONGRWKV_NORM_MAX_THREADS) norm_backward_dx_f32(const float* dOut, const float* x, const float* w, const float* mean,
                                                const float* rstd, float* dx, int C, int groups) {
    __shared__ double sh[LONGRWKV_NORM_MAX_THREADS];
    const int g = C / groups;
    const long long rowGroup = blockIdx.x;
    const int q = (int)(rowGroup % groups);
    const long long base = (rowGroup / groups) * C + (long long)q * g;
    const float m = mean[rowGroup], s = rstd[rowGroup];
    double sumD = 0.0, sumDX = 0.0;
    for (int i = threadIdx.x; i < g; i += blockDim.x) {
        int c = q * g + i;
        float xhat = (x[base + i] - m) * s;
        float dxhat = dOut[base + i] * w[c];
        sumD += dxhat;
        sumDX += dxhat * xhat;
    }
    const float meanD = (float)(block_sum(sumD, sh) / g);
    const float meanDX = (float)(block_sum(sumDX, sh) / g);
    for (int i = threadIdx.x; i < g; i += blockDim.x) {
        int c = q * g + i;
        float xhat = (x[base + i] - m) * s;
        dx[base + i] += s * (dOut[base + i] * w[c] - meanD - xhat * meanDX);
    }
}

// dw, db (accumulate): one thread per column adds row after row in float, the same order as the CPU reference.
extern "C" __global__ void norm_backward_params_f32(const float* dOut, const float* x, const float* mean,
                                                    const float* rstd, float* dw, float* db, int rows, int C, int groups) {
    const int g = C / groups;
    for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < C; c += blockDim.x * gridDim.x) {
        const int q = c / g;
        float accW = dw[c], accB = db[c];
        for (int r = 0; r < rows; r++) {
            long long at = (long long)r * C + c;
            float xhat = (x[at] - mean[(long long)r * groups + q]) * rstd[(long long)r * groups + q];
            float dy = dOut[at];
            accW += dy * xhat;
            accB += dy;
        }
        dw[c] = accW;
        db[c] = accB;
    }
}
