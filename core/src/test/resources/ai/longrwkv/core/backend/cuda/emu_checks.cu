// Kernels with known defects (and a few correct ones) for EmulatorChecksTest: each defect must be reported by the
// emulated device, each correct kernel must give the result the CUDA programming guide defines.

extern "C" __global__ void barrier_in_branch(float* out) {
    if (threadIdx.x < 16) __syncthreads();          // half the block never reaches it
    out[threadIdx.x] = 1.f;
}

extern "C" __global__ void two_barrier_sites(float* out) {
    if (threadIdx.x % 2) __syncthreads();           // odd threads wait here,
    else __syncthreads();                           // even threads there
    out[threadIdx.x] = 1.f;
}

extern "C" __global__ void early_return_then_barrier(float* out) {
    if (threadIdx.x == 3) return;
    __syncthreads();
    out[threadIdx.x] = 1.f;
}

// shared-memory tree sum, correct (one barrier per level, reached by all)
extern "C" __global__ void block_sum(const float* in, float* out) {
    __shared__ float sh[256];
    sh[threadIdx.x] = in[blockIdx.x * blockDim.x + threadIdx.x];
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) sh[threadIdx.x] += sh[threadIdx.x + s];
        __syncthreads();
    }
    if (threadIdx.x == 0) out[blockIdx.x] = sh[0];
}

extern "C" __global__ void warp_xor_sum(const float* in, float* out) {
    float v = in[threadIdx.x];
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    out[threadIdx.x] = v;
}

extern "C" __global__ void warp_down_up_idx(const int* in, int* down, int* up, int* bcast) {
    int v = in[threadIdx.x];
    down[threadIdx.x] = __shfl_down_sync(0xffffffffu, v, 3);
    up[threadIdx.x] = __shfl_up_sync(0xffffffffu, v, 5, 16);
    bcast[threadIdx.x] = __shfl_sync(0xffffffffu, v, 7);
}

extern "C" __global__ void warp_votes(const int* in, unsigned* ballot, int* any, int* all) {
    int p = in[threadIdx.x];
    ballot[threadIdx.x] = __ballot_sync(0xffffffffu, p);
    any[threadIdx.x] = __any_sync(0xffffffffu, p);
    all[threadIdx.x] = __all_sync(0xffffffffu, p);
    __syncwarp();
}

extern "C" __global__ void mask_without_caller(float* out) {
    out[threadIdx.x] = __shfl_sync(0x1u, 1.f, 0);   // lanes 1..31 call with a mask of lane 0 only
}

extern "C" __global__ void mask_lanes_missing(float* out) {
    if (threadIdx.x < 16) out[threadIdx.x] = __shfl_sync(0xffffffffu, 1.f, 0);   // lanes 16..31 never arrive
}

extern "C" __global__ void shuffle_outside_mask(float* out) {
    if (threadIdx.x < 16) out[threadIdx.x] = __shfl_sync(0x0000ffffu, (float)threadIdx.x, 20);
}

// mma.sync (.aligned): every lane of the warp at the same instruction
extern "C" __global__ void mma_half_warp(float* out) {
    unsigned a[4] = {0, 0, 0, 0}, b[2] = {0, 0};
    float c[4] = {0.f, 0.f, 0.f, 0.f};
    if (threadIdx.x < 16) emu_mma_m16n8k16_bf16(c, a, b, c);   // lanes 16..31 never arrive
    out[threadIdx.x] = c[0];
}

extern "C" __global__ void mma_two_sites(float* out) {
    unsigned a[4] = {0, 0, 0, 0}, b[2] = {0, 0};
    float c[4] = {0.f, 0.f, 0.f, 0.f};
    if (threadIdx.x < 16) emu_mma_m16n8k16_bf16(c, a, b, c);
    else emu_mma_m16n8k16_bf16(c, a, b, c);
    out[threadIdx.x] = c[0];
}

extern "C" __global__ void write_one_past(float* out, int n) {
    if (threadIdx.x == 0) out[n] = 1.f;
}

extern "C" __global__ void __launch_bounds__(64) bounded_64(float* out) {
    out[threadIdx.x] = 1.f;
}

extern "C" __global__ void count_atomically(int* counter, float* sum) {
    atomicAdd(counter, 1);
    atomicAdd(sum, 0.5f);
}

extern "C" __global__ void traps(float* out) {
    if (threadIdx.x == 5) __trap();
    out[threadIdx.x] = 1.f;
}
