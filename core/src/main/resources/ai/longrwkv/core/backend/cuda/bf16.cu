// bf16 kernels of the CUDA backend: conversion between fp32 and bf16 (copy, upload) and the embedding gather from a
// bf16 table. A bf16 value travels as its 16-bit pattern (unsigned short), the top half of a float, so the conversions
// are integer operations: no cuda_bf16.h (NVRTC would need the toolkit's include path), and the same bits from the
// emulated device and from any GPU architecture.
//
// Narrowing rounds to nearest, ties to even, exactly as __float2bfloat16_rn (cuda_bf16.hpp's software path and the
// cvt.rn.bf16.f32 instruction): overflow rounds to infinity, subnormals are kept, NaN becomes the canonical NaN 0x7fff.
// The Java reference is Float16.floatToBf16; it gives the same bits for every value but NaN, where it keeps the
// sign and payload (a NaN either way). Widening is exact.

#include "launch_config.cuh"

#define BF16_GRID_STRIDE(i, n) for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n); \
                                    i += (long long)blockDim.x * gridDim.x)

__device__ __forceinline__ float bf16_widen(unsigned short b) { return __uint_as_float(((unsigned)b) << 16); }

__device__ __forceinline__ unsigned short bf16_round(float f) {
    unsigned x = __float_as_uint(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return 0x7fffu;           // NaN
    // adding 0x7fff plus the lowest kept bit rounds half to even; a carry into the exponent is the correct rounding
    // up, and the largest finite floats carry into infinity
    return (unsigned short)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

// dst[i] = bf16(src[i]) (CpuBackend.copy fp32 -> bf16).
extern "C" __global__ void f32_to_bf16(const float* src, unsigned short* dst, long long n) {
    BF16_GRID_STRIDE(i, n) dst[i] = bf16_round(src[i]);
}

// dst[i] = float(src[i]) (CpuBackend.copy bf16 -> fp32).
extern "C" __global__ void bf16_to_f32(const unsigned short* src, float* dst, long long n) {
    BF16_GRID_STRIDE(i, n) dst[i] = bf16_widen(src[i]);
}

// out[t] = float(table[ids[t]]) (CpuBackend.embedding with a bf16 table); ids were range-checked on the host.
extern "C" __global__ void embedding_bf16(const unsigned short* table, const int* ids, float* out, int T, int C) {
    BF16_GRID_STRIDE(i, (long long)T * C) {
        long long t = i / C, c = i % C;
        out[i] = bf16_widen(table[(long long)ids[t] * C + c]);
    }
}
