// CUDA emulation for the project's own kernels: the real .cu sources compile unchanged with g++ through this header
// (included first with -include) and run on the CPU, one emulated thread per CUDA thread. Two execution modes:
//   fibers  - every thread of a block is a ucontext fiber on one OS thread (fast; the default of the emulated device);
//   threads - every thread of a block is a pthread (what ThreadSanitizer and AddressSanitizer runs use).
// Blocks run one after another, so __shared__ variables are plain statics shared by the block that is running.
//
// What it checks, beyond running the code:
//   __syncthreads: every thread of the block must arrive at the same call site; a barrier that some threads skip
//     (a barrier inside a branch, a thread that returned early) or threads waiting at different barriers is an error
//     naming the sites and the counts, never a silent pass or a hang;
//   warp collectives (__shfl*_sync, __ballot_sync, __any_sync, __all_sync, __syncwarp): the calling lane must be in
//     the mask, every lane of the mask must arrive at the same call with the same mask, and a shuffle may read only
//     lanes of the mask;
//   tensor-core products (the PTX instruction mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32, which the kernels
//     write as inline asm under NVRTC and as emu_mma_m16n8k16_bf16 here, see LONGRWKV_EMULATED_DEVICE): all 32 lanes
//     of the warp must arrive at the same call (.aligned), each holding its registers in the fragment layout of the
//     PTX ISA; the product is computed from the 32 lanes' registers and scattered back the same way;
//   deadlock: when no thread can move, the launch fails with each waiting thread's site;
//   __trap() and block sizes above __launch_bounds__ (checked by the host side).
// NVRTC defines neither INFINITY nor NAN (nvcc does, through math.h): they are undefined here too, so that a kernel
// that only nvcc accepts fails on the emulated device as it would at run time.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <cstdio>
#include <string>
#include <vector>
#include <utility>
#include <type_traits>
#include <atomic>
#include <pthread.h>
#include <ucontext.h>

#undef INFINITY
#undef NAN

// Defined only here: kernels test it where the GPU needs inline PTX (mma.sync) that g++ cannot compile.
#define LONGRWKV_EMULATED_DEVICE 1

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __shared__ static
#define __constant__ static
#define __launch_bounds__(...)
#define __restrict__ __restrict

struct uint3 { unsigned int x, y, z; };
struct dim3 { unsigned int x, y, z; };

namespace emu {

enum Wait { RUNNING = 0, AT_BARRIER = 1, AT_WARP = 2, DONE = 3 };
enum WarpOp { OP_SYNC, OP_SHFL, OP_SHFL_XOR, OP_SHFL_DOWN, OP_SHFL_UP, OP_BALLOT, OP_ANY, OP_ALL, OP_MMA };

// One lane's registers of an mma.sync m16n8k16 bf16 product (OP_MMA passes a pointer to it as the lane's value):
// a: 4 registers of 2 bf16 each, b: 2 of 2 bf16, c and d: 4 floats (d may be c).
struct MmaLane { const unsigned* a; const unsigned* b; const float* c; float* d; };

struct Block;

struct Thread {
    uint3 tid;
    int linear;                 // threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z)
    Block* block;
    int wait = RUNNING;
    const char* file = nullptr;
    int line = 0;
    // warp collective in progress
    int op = OP_SYNC;
    unsigned mask = 0;
    uint64_t value = 0;
    int arg = 0, width = 32;
    uint64_t result = 0;
    // fibers
    ucontext_t ctx;
    char* stack = nullptr;
    pthread_t os;
};

struct Block {
    uint3 idx;
    int n;                      // threads in the block
    std::vector<Thread> threads;
    bool threadsMode = false;
    bool failed = false;
    std::string error;
    unsigned barrierGeneration = 0;
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
    ucontext_t scheduler;
};

struct Launch {
    dim3 grid, block;
};

extern thread_local Thread* current;
extern Launch launchConfig;

struct Abort { };

std::string site(const Thread& t);
void fail(Thread& t, const std::string& message);               // records the block's error and leaves the thread
void barrier(const char* file, int line);
uint64_t warpCollective(int op, unsigned mask, uint64_t value, int arg, int width, const char* file, int line);

template <typename T> inline uint64_t bits(T v) {
    static_assert(sizeof(T) <= 8, "warp shuffle of a type larger than 8 bytes");
    uint64_t b = 0;
    std::memcpy(&b, &v, sizeof(T));
    return b;
}
template <typename T> inline T unbits(uint64_t b) {
    T v;
    std::memcpy(&v, &b, sizeof(T));
    return v;
}

}  // namespace emu

#define threadIdx (emu::current->tid)
#define blockIdx (emu::current->block->idx)
#define blockDim (emu::launchConfig.block)
#define gridDim (emu::launchConfig.grid)
#define warpSize 32

#define __syncthreads() emu::barrier(__FILE__, __LINE__)
#define __syncwarp(...) ((void)emu::warpCollective(emu::OP_SYNC, emu_default_mask(__VA_ARGS__), 0, 0, 32, __FILE__, __LINE__))
inline unsigned emu_default_mask() { return 0xffffffffu; }
inline unsigned emu_default_mask(unsigned m) { return m; }

#define __shfl_sync(mask, var, ...) emu_shfl(emu::OP_SHFL, mask, var, __FILE__, __LINE__, __VA_ARGS__)
#define __shfl_xor_sync(mask, var, ...) emu_shfl(emu::OP_SHFL_XOR, mask, var, __FILE__, __LINE__, __VA_ARGS__)
#define __shfl_down_sync(mask, var, ...) emu_shfl(emu::OP_SHFL_DOWN, mask, var, __FILE__, __LINE__, __VA_ARGS__)
#define __shfl_up_sync(mask, var, ...) emu_shfl(emu::OP_SHFL_UP, mask, var, __FILE__, __LINE__, __VA_ARGS__)
template <typename T>
inline T emu_shfl(int op, unsigned mask, T var, const char* file, int line, int arg, int width = 32) {
    return emu::unbits<T>(emu::warpCollective(op, mask, emu::bits(var), arg, width, file, line));
}
#define __ballot_sync(mask, pred) ((unsigned)emu::warpCollective(emu::OP_BALLOT, mask, (pred) ? 1 : 0, 0, 32, __FILE__, __LINE__))
#define __any_sync(mask, pred) ((int)emu::warpCollective(emu::OP_ANY, mask, (pred) ? 1 : 0, 0, 32, __FILE__, __LINE__))
#define __all_sync(mask, pred) ((int)emu::warpCollective(emu::OP_ALL, mask, (pred) ? 1 : 0, 0, 32, __FILE__, __LINE__))
#define __activemask() 0xffffffffu

// mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {d0..d3}, {a0..a3}, {b0, b1}, {c0..c3}: D = A B + C with A 16x16
// and B 16x8 in bf16, C and D 16x8 in fp32, one warp-wide instruction. Every lane must call it (full mask); the
// fragment layout (which lane holds which elements) is the PTX ISA's, implemented in the runtime's completeWarp.
#define emu_mma_m16n8k16_bf16(d, a, b, c) emu_mma_at(d, a, b, c, __FILE__, __LINE__)
inline void emu_mma_at(float* d, const unsigned* a, const unsigned* b, const float* c, const char* file, int line) {
    emu::MmaLane lane{a, b, c, d};
    (void)emu::warpCollective(emu::OP_MMA, 0xffffffffu, (uint64_t)(uintptr_t)&lane, 0, 32, file, line);
}
#define __trap() emu::fail(*emu::current, std::string("__trap() at ") + __FILE__ + ":" + std::to_string(__LINE__))

// ------------------------------------------------------------------ atomics (sequentially consistent, like the GPU's)
template <typename T> inline T atomicAdd(T* a, T v) {
    if constexpr (std::is_floating_point<T>::value) {
        T old, want;
        __atomic_load(a, &old, __ATOMIC_SEQ_CST);
        do { want = old + v; } while (!__atomic_compare_exchange(a, &old, &want, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST));
        return old;
    } else {
        return __atomic_fetch_add(a, v, __ATOMIC_SEQ_CST);
    }
}
template <typename T> inline T atomicSub(T* a, T v) { return __atomic_fetch_sub(a, v, __ATOMIC_SEQ_CST); }
template <typename T> inline T atomicExch(T* a, T v) { T old; __atomic_exchange(a, &v, &old, __ATOMIC_SEQ_CST); return old; }
template <typename T> inline T atomicMax(T* a, T v) {
    T old = __atomic_load_n(a, __ATOMIC_SEQ_CST);
    while (old < v && !__atomic_compare_exchange_n(a, &old, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) { }
    return old;
}
template <typename T> inline T atomicMin(T* a, T v) {
    T old = __atomic_load_n(a, __ATOMIC_SEQ_CST);
    while (old > v && !__atomic_compare_exchange_n(a, &old, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) { }
    return old;
}
template <typename T> inline T atomicCAS(T* a, T compare, T v) {
    __atomic_compare_exchange_n(a, &compare, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    return compare;
}
inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_block() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

// ------------------------------------------------------------------ math and bit casts of the CUDA device library
inline float __int_as_float(int x) { float f; std::memcpy(&f, &x, 4); return f; }
inline int __float_as_int(float f) { int x; std::memcpy(&x, &f, 4); return x; }
inline unsigned __float_as_uint(float f) { unsigned x; std::memcpy(&x, &f, 4); return x; }
inline float __uint_as_float(unsigned x) { float f; std::memcpy(&f, &x, 4); return f; }
inline double __longlong_as_double(long long x) { double d; std::memcpy(&d, &x, 8); return d; }
inline long long __double_as_longlong(double d) { long long x; std::memcpy(&x, &d, 8); return x; }
inline float rsqrtf(float x) { return 1.f / std::sqrt(x); }
inline double rsqrt(double x) { return 1.0 / std::sqrt(x); }
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __saturatef(float x) { return x < 0.f ? 0.f : (x > 1.f ? 1.f : x); }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz((unsigned)x); }
template <typename T> inline T __ldg(const T* p) { return *p; }
// expf, fmaf, sqrtf, exp, log, ... are the C library's (math.h, through cmath), correctly rounded or close to it.

// ------------------------------------------------------------------ the module's launch table
namespace emu {
struct KernelEntry {
    const char* name;
    int maxThreads;             // __launch_bounds__, 0 when the kernel has none
    int nparams;
    int sizes[32];
    void (*invoke)(void** args);
};

template <typename... A, size_t... I>
inline void invokeWith(void (*f)(A...), void** args, std::index_sequence<I...>) {
    f(*static_cast<std::remove_cv_t<std::remove_reference_t<A>>*>(args[I])...);
}

template <typename F> struct Signature;
template <typename... A> struct Signature<void (*)(A...)> {
    static constexpr int n = sizeof...(A);
    static_assert(sizeof...(A) <= 32, "a kernel with more than 32 parameters");
    static void fill(int* out) { int i = 0; ((out[i++] = (int)sizeof(A)), ...); (void)out; (void)i; }
};

template <typename F, F f>
inline void trampoline(void** args) {
    invokeWith(f, args, std::make_index_sequence<Signature<F>::n>());
}

template <typename F, F f>
inline KernelEntry entry(const char* name, int maxThreads) {
    KernelEntry e{name, maxThreads, Signature<F>::n, {0}, &trampoline<F, f>};
    Signature<F>::fill(e.sizes);
    return e;
}

// Runs grid x block threads of one kernel; returns an empty string or the first error.
std::string run(const KernelEntry& k, dim3 grid, dim3 block, void** args, bool threadsMode);
}  // namespace emu

#define EMU_MODULE_BEGIN static std::vector<emu::KernelEntry> emu_kernel_table() { return {
#define EMU_KERNEL(fn, bound) emu::entry<decltype(&fn), &fn>(#fn, bound),
#define EMU_MODULE_END }; }                                                                                        \
    extern "C" __attribute__((visibility("default"))) int emu_module_kernel(const char* name, int* maxThreads, int* nparams, int* sizes) {                \
        static const std::vector<emu::KernelEntry> table = emu_kernel_table();                                     \
        for (const auto& k : table) if (std::strcmp(k.name, name) == 0) {                                          \
            *maxThreads = k.maxThreads; *nparams = k.nparams;                                                      \
            for (int i = 0; i < k.nparams; i++) sizes[i] = k.sizes[i];                                             \
            return 1;                                                                                              \
        }                                                                                                          \
        return 0;                                                                                                  \
    }                                                                                                              \
    extern "C" __attribute__((visibility("default"))) int emu_module_launch(const char* name, const unsigned* g, const unsigned* b, void** args,          \
                                     int threadsMode, char* err, int errLen) {                                     \
        static const std::vector<emu::KernelEntry> table = emu_kernel_table();                                     \
        for (const auto& k : table) if (std::strcmp(k.name, name) == 0) {                                          \
            std::string e = emu::run(k, dim3{g[0], g[1], g[2]}, dim3{b[0], b[1], b[2]}, args, threadsMode != 0);   \
            if (e.empty()) return 0;                                                                               \
            std::snprintf(err, (size_t)errLen, "%s", e.c_str());                                                   \
            return 1;                                                                                              \
        }                                                                                                          \
        std::snprintf(err, (size_t)errLen, "no kernel named %s in this module", name);                             \
        return 2;                                                                                                  \
    }

#include "cuda_emu_runtime.h"
