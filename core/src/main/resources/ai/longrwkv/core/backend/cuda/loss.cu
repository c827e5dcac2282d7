// Cross-entropy over rows of logits [T, V] with the gradient and RWKV-LM's L2Wrap term, as CrossEntropyCpu.row:
// one block per row (launch with 1024 threads); nothing larger than the logits chunk itself is ever allocated.
// dLogits may be the logits tensor: each element is read and then written by the same thread, and the target logit
// is read before the first barrier that precedes any write.

#include "launch_config.cuh"

extern "C" __global__ void __launch_bounds__(LONGRWKV_CE_THREADS) cross_entropy_f32(const float* logits, float* dLogits, const int* targets,
                                             const float* weights, float l2WrapFactor, int V, double* rowLoss) {
    __shared__ float shMax[LONGRWKV_CE_THREADS];
    __shared__ int shArg[LONGRWKV_CE_THREADS];
    __shared__ double shSum[LONGRWKV_CE_THREADS];
    __shared__ float shTargetLogit;
    const long long row = blockIdx.x;
    const float* x = logits + row * V;
    const int tid = threadIdx.x;
    if (blockDim.x != LONGRWKV_CE_THREADS) __trap();   // the shared arrays and the tree reduction assume it
    const int target = targets[row];
    const float weight = weights[row];
    const bool hasTarget = target >= 0 && weight != 0.f;
    if (tid == 0) shTargetLogit = hasTarget ? x[target] : 0.f;

    // max and the first index holding it (strict >, as the CPU scan)
    float best = __int_as_float(0xff800000);   // -inf (NVRTC has no INFINITY macro)
    int arg = 0x7fffffff;
    for (int i = tid; i < V; i += blockDim.x) {
        float xi = x[i];
        if (xi > best) { best = xi; arg = i; }
    }
    shMax[tid] = best;
    shArg[tid] = arg;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (tid < s) {
            float o = shMax[tid + s];
            int oa = shArg[tid + s];
            if (o > shMax[tid] || (o == shMax[tid] && oa < shArg[tid])) { shMax[tid] = o; shArg[tid] = oa; }
        }
        __syncthreads();
    }
    const float max = shMax[0];
    const int argmax = shArg[0] == 0x7fffffff ? 0 : shArg[0];

    double sum = 0.0;
    for (int i = tid; i < V; i += blockDim.x) sum += (double)expf(x[i] - max);
    shSum[tid] = sum;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (tid < s) shSum[tid] += shSum[tid + s];
        __syncthreads();
    }
    const double total = shSum[0];
    if (tid == 0) {
        double lse = (double)max + log(total);
        rowLoss[row] = hasTarget ? (double)weight * (lse - (double)shTargetLogit) : 0.0;
    }
    if (dLogits != nullptr) {
        float* out = dLogits + row * V;
        const float scale = (float)((double)weight / total);
        const float l2 = l2WrapFactor * max;
        for (int i = tid; i < V; i += blockDim.x) {
            float g = hasTarget ? expf(x[i] - max) * scale : 0.f;
            if (hasTarget && i == target) g -= weight;
            if (l2WrapFactor > 0.f && i == argmax) g += l2;
            out[i] = g;
        }
    }
}
