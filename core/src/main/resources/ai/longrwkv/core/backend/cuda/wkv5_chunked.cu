// WKV5 in chunked form (rwkv5-spec.md section 6), forward and backward, with the same contract as wkv5.cu (initial
// state in, final state out, dL/dS_T in, dL/dS_0 out) and the same algorithm as the CPU's WkvChunkedCpu. Inside a
// chunk of L tokens starting from state S (local times t, s):
//   y_t = (r_t (.) w^t)^T S + sum_{s<=t} A[t][s] v_s,   A[t][s] = sum_i r_t[i] k_s[i] w_i^(t-1-s) (s<t), A[t][t] = r_t.(u(.)k_t)
//   S_L = diag(w^L) S + sum_s (k_s (.) w^(L-1-s)) v_s^T
// Every power of w has an exponent in 0..L (derivatives: d w^(d-1), exponent 0..L-1), read from a per-block table:
// nothing is divided by w, so every decay (w from 1.9e-9 to 0.9997) is safe. Powers below the smallest normal float
// are flushed to 0, as on the CPU.
//
// Parallelism: one block per (head, tile of VT value columns), so H * N/VT blocks fill the GPU at batch 1 (256 for the
// 7B shape H = 64, N = 64); the chunks of a sequence are sequential, and only the fp32 state tile passes between them.
// The key-side sums of the backward (dr, dk, dw, du sum over all value columns) are computed per tile into partial
// buffers and summed over tiles in a fixed order by wkv5c_reduce, so results do not depend on scheduling.
//
// The wkv5c_* kernels run their products on CUDA cores in fp32 FMA: every operand of the intra-chunk products is an
// fp32 value (decay-weighted r or k, the fp32 state, the attention matrix), and tf32 (10-bit mantissa) or bf16
// operands would make the error ~1e-3 relative where the fp32 path must stay within 1e-5 of the sequential reference;
// with bf16 inputs they still form the products in fp32, so that the only error is the rounding of the inputs. They are
// the reference path. The wkv5t_* forward (bf16 inputs only, below) runs the products on tensor cores with bf16
// operands and fp32 accumulation and an fp32 state, with the error budget derived there.
//
// Input types: float, or bf16 passed as its 16-bit pattern (unsigned short; bf16 -> fp32 is a shift, so no header is
// needed under NVRTC). w is always fp32 (it is exp(-exp(time_decay)); RWKV-LM's kernels also keep it in fp32).
// Compiled with --fmad=false: fused multiply-adds are the explicit fmaf calls.

#include "launch_config.cuh"

#define WKV5C_L LONGRWKV_WKV_CHUNK_LEN
#define WKV5C_THREADS LONGRWKV_WKV_CHUNK_THREADS

__device__ __forceinline__ float wkv5c_in(float x) { return x; }
__device__ __forceinline__ float wkv5c_in(unsigned short x) { return __uint_as_float(((unsigned)x) << 16); }

// Value columns per block.
template <int N> struct Wkv5cTile { static constexpr int VT = N < 16 ? N : 16; static constexpr int TILES = N / VT; };

// pw[d][i] = w_i^d and (if dpw) dpw[d][i] = d w_i^(d-1), d = 0..L, computed in double (one rounding per entry).
template <int N, int L>
__device__ void wkv5c_powers(const float* __restrict__ w, float (*pw)[N], float (*dpw)[N]) {
    for (int i = threadIdx.x; i < N; i += blockDim.x) {
        const double wi = (double)w[i];
        double p = 1.0, prev = 0.0;
        for (int d = 0; d <= L; d++) {
            float f = (float)p, g = (float)(d * prev);
            pw[d][i] = fabsf(f) < 1.17549435e-38f ? 0.f : f;
            if (dpw) dpw[d][i] = fabsf(g) < 1.17549435e-38f ? 0.f : g;
            prev = p;
            p *= wi;
        }
    }
}

// Loads one chunk: sr, sk = r, k rows (all N key channels; zeros past len), sv = v's tile columns.
template <int N, int L, typename Tin>
__device__ void wkv5c_load(int t0, int len, int C, int h, int j0, const Tin* __restrict__ r, const Tin* __restrict__ k,
                           const Tin* __restrict__ v, float (*sr)[N], float (*sk)[N], float (*sv)[Wkv5cTile<N>::VT]) {
    constexpr int VT = Wkv5cTile<N>::VT;
    for (int e = threadIdx.x; e < L * N; e += blockDim.x) {
        const int t = e / N, i = e % N;
        const size_t at = (size_t)(t0 + t) * C + h * N + i;
        if (sr) sr[t][i] = t < len ? wkv5c_in(r[at]) : 0.f;
        sk[t][i] = t < len ? wkv5c_in(k[at]) : 0.f;
    }
    for (int e = threadIdx.x; e < L * VT; e += blockDim.x) {
        const int t = e / VT, jj = e % VT;
        sv[t][jj] = t < len ? wkv5c_in(v[(size_t)(t0 + t) * C + h * N + j0 + jj]) : 0.f;
    }
}

// sa[t][s] = A[t][s] for s <= t < len, 0 elsewhere.
template <int N, int L>
__device__ void wkv5c_attention(int len, const float (*sr)[N], const float (*sk)[N], const float* su, const float (*pw)[N],
                                float (*sa)[L]) {
    for (int e = threadIdx.x; e < L * L; e += blockDim.x) {
        const int t = e / L, s = e % L;
        float a = 0.f;
        if (t < len && s < t) {
            for (int i = 0; i < N; i++) a = fmaf(sr[t][i] * sk[s][i], pw[t - 1 - s][i], a);
        } else if (t < len && s == t) {
            for (int i = 0; i < N; i++) a = fmaf(sr[t][i] * su[i], sk[t][i], a);
        }
        sa[t][s] = a;
    }
}

// ss = diag(w^len) ss + sum_s (k_s (.) w^(len-1-s)) v_s^T on the tile (each element reads only itself of ss).
template <int N, int L>
__device__ void wkv5c_advance(int len, const float (*sk)[N], const float (*sv)[Wkv5cTile<N>::VT], const float (*pw)[N],
                              float (*ss)[Wkv5cTile<N>::VT]) {
    constexpr int VT = Wkv5cTile<N>::VT;
    for (int e = threadIdx.x; e < N * VT; e += blockDim.x) {
        const int i = e / VT, jj = e % VT;
        float acc = pw[len][i] * ss[i][jj];
        for (int s = 0; s < len; s++) acc = fmaf(sk[s][i] * pw[len - 1 - s][i], sv[s][jj], acc);
        ss[i][jj] = acc;
    }
}

template <int N, int L, typename Tin>
__device__ void wkv5c_forward_impl(int T, int C, const Tin* __restrict__ r, const Tin* __restrict__ k,
                                   const Tin* __restrict__ v, const float* __restrict__ w, const Tin* __restrict__ u,
                                   float* __restrict__ state, float* __restrict__ y) {
    constexpr int VT = Wkv5cTile<N>::VT, TILES = Wkv5cTile<N>::TILES;
    const int h = blockIdx.x / TILES, j0 = (blockIdx.x % TILES) * VT;
    __shared__ float sr[L][N], sk[L][N], pw[L + 1][N], su[N], sa[L][L], sv[L][VT], ss[N][VT];
    float* st = state + (size_t)h * N * N;
    wkv5c_powers<N, L>(w + h * N, pw, nullptr);
    for (int i = threadIdx.x; i < N; i += blockDim.x) su[i] = wkv5c_in(u[h * N + i]);
    for (int e = threadIdx.x; e < N * VT; e += blockDim.x) ss[e / VT][e % VT] = st[(e / VT) * N + j0 + e % VT];
    for (int t0 = 0; t0 < T; t0 += L) {
        const int len = T - t0 < L ? T - t0 : L;
        __syncthreads();                               // the previous chunk is done with sr, sk, sv, sa; ss is loaded
        wkv5c_load<N, L, Tin>(t0, len, C, h, j0, r, k, v, sr, sk, sv);
        __syncthreads();
        wkv5c_attention<N, L>(len, sr, sk, su, pw, sa);
        __syncthreads();
        for (int e = threadIdx.x; e < len * VT; e += blockDim.x) {
            const int t = e / VT, jj = e % VT;
            float acc = 0.f;
            for (int i = 0; i < N; i++) acc = fmaf(sr[t][i] * pw[t][i], ss[i][jj], acc);
            for (int s = 0; s <= t; s++) acc = fmaf(sa[t][s], sv[s][jj], acc);
            y[(size_t)(t0 + t) * C + h * N + j0 + jj] = acc;
        }
        __syncthreads();                               // y has read ss
        wkv5c_advance<N, L>(len, sk, sv, pw, ss);
    }
    __syncthreads();
    for (int e = threadIdx.x; e < N * VT; e += blockDim.x) st[(e / VT) * N + j0 + e % VT] = ss[e / VT][e % VT];
}

// Backward, part 1: the state at the start of every chunk, states[h][chunk][i][j] (the final state is not written).
template <int N, int L, typename Tin>
__device__ void wkv5c_states_impl(int T, int C, const Tin* __restrict__ k, const Tin* __restrict__ v,
                                  const float* __restrict__ w, const float* __restrict__ state0, float* __restrict__ states) {
    constexpr int VT = Wkv5cTile<N>::VT, TILES = Wkv5cTile<N>::TILES;
    const int h = blockIdx.x / TILES, j0 = (blockIdx.x % TILES) * VT;
    const int chunks = (T + L - 1) / L;
    __shared__ float sk[L][N], pw[L + 1][N], sv[L][VT], ss[N][VT];
    wkv5c_powers<N, L>(w + h * N, pw, nullptr);
    for (int e = threadIdx.x; e < N * VT; e += blockDim.x) ss[e / VT][e % VT] = state0[(size_t)h * N * N + (e / VT) * N + j0 + e % VT];
    for (int c = 0; c < chunks; c++) {
        const int t0 = c * L, len = T - t0 < L ? T - t0 : L;
        __syncthreads();
        float* out = states + ((size_t)h * chunks + c) * N * N;
        for (int e = threadIdx.x; e < N * VT; e += blockDim.x) out[(e / VT) * N + j0 + e % VT] = ss[e / VT][e % VT];
        if (c == chunks - 1) break;                    // uniform over the block
        wkv5c_load<N, L, Tin>(t0, len, C, h, j0, (const Tin*)nullptr, k, v, nullptr, sk, sv);
        __syncthreads();
        wkv5c_advance<N, L>(len, sk, sv, pw, ss);
    }
}

// Backward, part 2: the chunks in reverse. Writes dv (complete: it sums over key channels, all in the block), replaces
// dState's tile by dL/dS_0, and writes this tile's parts of dr, dk (grp, gkp: [TILES][T][C]) and dw, du (dwp, dup:
// [TILES][C]). Threads 0..N-1 own key channel i for the r-side terms (dr and its dw terms), threads N..2N-1 for the
// k-side terms (dk and its dw terms).
template <int N, int L, typename Tin>
__device__ void wkv5c_backward_impl(int T, int C, const Tin* __restrict__ r, const Tin* __restrict__ k,
                                    const Tin* __restrict__ v, const float* __restrict__ w, const Tin* __restrict__ u,
                                    const float* __restrict__ dy, const float* __restrict__ states,
                                    float* __restrict__ dState, float* __restrict__ dv, float* __restrict__ grp,
                                    float* __restrict__ gkp, float* __restrict__ dwp, float* __restrict__ dup) {
    constexpr int VT = Wkv5cTile<N>::VT, TILES = Wkv5cTile<N>::TILES;
    const int tile = blockIdx.x % TILES, h = blockIdx.x / TILES, j0 = tile * VT;
    const int chunks = (T + L - 1) / L, tid = threadIdx.x;
    __shared__ float sr[L][N], sk[L][N], pw[L + 1][N], dpw[L + 1][N], su[N], sa[L][L], sda[L][L];
    __shared__ float sv[L][VT], sgy[L][VT], ss[N][VT], sd[N][VT];
    __shared__ double sdw[N];
    wkv5c_powers<N, L>(w + h * N, pw, dpw);
    for (int i = tid; i < N; i += blockDim.x) su[i] = wkv5c_in(u[h * N + i]);
    float* ds = dState + (size_t)h * N * N;
    for (int e = tid; e < N * VT; e += blockDim.x) sd[e / VT][e % VT] = ds[(e / VT) * N + j0 + e % VT];
    double dwAcc = 0.0, duAcc = 0.0;
    float* gp = (tid < N ? grp : gkp) + (size_t)tile * T * C;
    for (int c = chunks - 1; c >= 0; c--) {
        const int t0 = c * L, len = T - t0 < L ? T - t0 : L;
        __syncthreads();                               // the previous chunk is done with every shared array
        wkv5c_load<N, L, Tin>(t0, len, C, h, j0, r, k, v, sr, sk, sv);
        const float* sc = states + ((size_t)h * chunks + c) * N * N;
        for (int e = tid; e < N * VT; e += blockDim.x) ss[e / VT][e % VT] = sc[(e / VT) * N + j0 + e % VT];
        for (int e = tid; e < L * VT; e += blockDim.x) {
            const int t = e / VT, jj = e % VT;
            sgy[t][jj] = t < len ? dy[(size_t)(t0 + t) * C + h * N + j0 + jj] : 0.f;
        }
        __syncthreads();
        wkv5c_attention<N, L>(len, sr, sk, su, pw, sa);
        for (int e = tid; e < L * L; e += blockDim.x) {   // this tile's part of dA[t][s] = gy_t . v_s (s <= t)
            const int t = e / L, s = e % L;
            float a = 0.f;
            if (t < len && s <= t) for (int jj = 0; jj < VT; jj++) a = fmaf(sgy[t][jj], sv[s][jj], a);
            sda[t][s] = a;
        }
        __syncthreads();
        // dv_s = A^T gy + (k_s (.) w^(len-1-s)) D   (D = dL/dS at the chunk's end, in sd)
        for (int e = tid; e < len * VT; e += blockDim.x) {
            const int s = e / VT, jj = e % VT;
            float g = 0.f;
            for (int t = s; t < len; t++) g = fmaf(sa[t][s], sgy[t][jj], g);
            for (int i = 0; i < N; i++) g = fmaf(sk[s][i] * pw[len - 1 - s][i], sd[i][jj], g);
            dv[(size_t)(t0 + s) * C + h * N + j0 + jj] = g;
        }
        if (tid < N) {
            const int i = tid;
            float dwc = 0.f, duc = 0.f, dsum = 0.f;
            for (int jj = 0; jj < VT; jj++) dsum = fmaf(sd[i][jj], ss[i][jj], dsum);
            dwc = dpw[len][i] * dsum;                                       // D (.) S through w^len
            for (int t = 0; t < len; t++) {
                float g = 0.f;                                              // (S gy_t)[i] over this tile
                for (int jj = 0; jj < VT; jj++) g = fmaf(sgy[t][jj], ss[i][jj], g);
                const float rt = sr[t][i], diag = sda[t][t];
                float gr = fmaf(pw[t][i], g, diag * su[i] * sk[t][i]);
                duc = fmaf(diag, rt * sk[t][i], duc);
                dwc = fmaf(rt * dpw[t][i], g, dwc);
                for (int s = 0; s < t; s++) {
                    const float a = sda[t][s], ks = sk[s][i];
                    gr = fmaf(a, ks * pw[t - 1 - s][i], gr);
                    dwc = fmaf(a * (rt * ks), dpw[t - 1 - s][i], dwc);
                }
                gp[(size_t)(t0 + t) * C + h * N + i] = gr;
            }
            dwAcc += (double)dwc;
            duAcc += (double)duc;
        } else if (tid < 2 * N) {
            const int i = tid - N;
            float dwc = 0.f;
            for (int s = 0; s < len; s++) {
                float hm = 0.f;                                             // (D v_s)[i] over this tile
                for (int jj = 0; jj < VT; jj++) hm = fmaf(sv[s][jj], sd[i][jj], hm);
                const float ks = sk[s][i];
                float gk = fmaf(pw[len - 1 - s][i], hm, sda[s][s] * su[i] * sr[s][i]);
                dwc = fmaf(ks * dpw[len - 1 - s][i], hm, dwc);
                for (int t = s + 1; t < len; t++) gk = fmaf(sda[t][s], sr[t][i] * pw[t - 1 - s][i], gk);
                gp[(size_t)(t0 + s) * C + h * N + i] = gk;
            }
            dwAcc += (double)dwc;
        }
        __syncthreads();                               // everyone is done with the old D and with S
        // D <- diag(w^len) D + (r (.) w^t)^T gy
        for (int e = tid; e < N * VT; e += blockDim.x) {
            const int i = e / VT, jj = e % VT;
            float acc = pw[len][i] * sd[i][jj];
            for (int t = 0; t < len; t++) acc = fmaf(sr[t][i] * pw[t][i], sgy[t][jj], acc);
            sd[i][jj] = acc;
        }
    }
    if (tid >= N && tid < 2 * N) sdw[tid - N] = dwAcc;
    __syncthreads();
    for (int e = tid; e < N * VT; e += blockDim.x) ds[(e / VT) * N + j0 + e % VT] = sd[e / VT][e % VT];
    if (tid < N) {
        dwp[(size_t)tile * C + h * N + tid] = (float)(dwAcc + sdw[tid]);
        dup[(size_t)tile * C + h * N + tid] = (float)duAcc;
    }
}

// Backward, part 3: dr, dk = the sums of the tiles' parts (overwrite); dw, du += the sums of theirs. Tiles in order.
extern "C" __global__ void wkv5c_reduce(int tiles, long long tc, int C, const float* grp, const float* gkp,
                                        const float* dwp, const float* dup, float* dr, float* dk, float* dw, float* du) {
    for (long long x = (long long)blockIdx.x * blockDim.x + threadIdx.x; x < tc; x += (long long)blockDim.x * gridDim.x) {
        float a = 0.f, b = 0.f;
        for (int p = 0; p < tiles; p++) { a += grp[p * tc + x]; b += gkp[p * tc + x]; }
        dr[x] = a;
        dk[x] = b;
        if (x < C) {
            float c = 0.f, d = 0.f;
            for (int p = 0; p < tiles; p++) { c += dwp[(long long)p * C + x]; d += dup[(long long)p * C + x]; }
            dw[x] += c;
            du[x] += d;
        }
    }
}

// ------------------------------------------------------------------ tensor cores (bf16 inputs)
// The forward on tensor cores: mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 (sm_80 and later; inline PTX, so
// NVRTC needs no header; the emulated device provides the same instruction, see cuda_emu.h). Per chunk and tile:
//   y    = bf16(r (.) w^t) . bf16(S)  +  bf16(A) . v             (16 x N . N x 16, then 16 x 16 . 16 x 16)
//   S_L  = w^L (.) S  +  bf16(k (.) w^(L-1-s))^T . v              (N x 16 . 16 x 16, accumulated onto the fp32 S)
// The state S stays in fp32: each warp holds 16 of its rows as mma accumulators in registers from the first chunk to the
// last (scaled by w^L in fp32 before each update), and only a bf16 copy of it is an mma operand (for y). A is built in
// fp32 as in the FMA kernel (wkv5c_attention: its decay sits inside the contraction over key channels, so it is not
// one product) and rounded to bf16 once. Errors, relative to the same computation in exact arithmetic on the same bf16
// inputs, per term of the output: y's intra-chunk terms (through bf16(A)) one rounding of 2^-8, y's terms through the
// state three (bf16(k w^..) when the token entered the state, bf16(S), bf16(r w^t)), the final state's one (bf16(k
// w^..)); fp32 accumulation adds only fp32-sized errors. CudaTensorCoreWkvTest checks exactly that bound.
// Needs N a multiple of 16 with N / 16 <= the block's warps (the state rows) and L = 16 (one mma k-step).

__device__ __forceinline__ unsigned short wkv5t_bf16(float x) {          // round to nearest, ties to even (finite x)
    unsigned b = __float_as_uint(x);
    b += 0x7fffu + ((b >> 16) & 1u);
    return (unsigned short)(b >> 16);
}
__device__ __forceinline__ unsigned wkv5t_pack(unsigned short lo, unsigned short hi) { return (unsigned)lo | ((unsigned)hi << 16); }

// One lane's registers of an m16n8k16 product, in the PTX ISA's fragment layout (g = lane / 4, q = lane % 4):
// A 16x16: register j holds a(2j), a(2j+1) at row g + 8 (j & 1), cols 2q + 8 (j >> 1) and the next one;
// B 16x8: register j holds b(2j), b(2j+1) at rows 2q + 8 j and the next one, col g;
// C, D 16x8: c_i at row g + 8 (i >> 1), col 2q + (i & 1).
struct Wkv5tA { unsigned x[4]; };
struct Wkv5tB { unsigned x[2]; };
struct Wkv5tC { float x[4]; };

// Element (row, col) of a bf16 matrix is m[row * rs + col * cs]: row-major with leading dimension ld is rs = ld,
// cs = 1; column-major is rs = 1, cs = ld. The same for the fp32 C and D.
__device__ __forceinline__ void wkv5t_load_a(Wkv5tA& a, const unsigned short* m, int rs, int cs) {
    const int lane = threadIdx.x & 31, g = lane >> 2, q = lane & 3;
    for (int j = 0; j < 4; j++) {
        const int row = g + 8 * (j & 1), col = 2 * q + 8 * (j >> 1);
        a.x[j] = wkv5t_pack(m[row * rs + col * cs], m[row * rs + (col + 1) * cs]);
    }
}
__device__ __forceinline__ void wkv5t_load_b(Wkv5tB& b, const unsigned short* m, int rs, int cs) {
    const int lane = threadIdx.x & 31, g = lane >> 2, q = lane & 3;
    for (int j = 0; j < 2; j++) {
        const int row = 2 * q + 8 * j;
        b.x[j] = wkv5t_pack(m[row * rs + g * cs], m[(row + 1) * rs + g * cs]);
    }
}
__device__ __forceinline__ int wkv5t_c_row(int i) { return ((threadIdx.x & 31) >> 2) + 8 * (i >> 1); }
__device__ __forceinline__ int wkv5t_c_col(int i) { return 2 * (threadIdx.x & 3) + (i & 1); }

#ifdef LONGRWKV_EMULATED_DEVICE
#define wkv5t_mma(d, a, b, c) emu_mma_m16n8k16_bf16((d).x, (a).x, (b).x, (c).x)
#else
__device__ __forceinline__ void wkv5t_mma_ptx(Wkv5tC& d, const Wkv5tA& a, const Wkv5tB& b, const Wkv5tC& c) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%10,%11,%12,%13};\n"
                 : "=f"(d.x[0]), "=f"(d.x[1]), "=f"(d.x[2]), "=f"(d.x[3])
                 : "r"(a.x[0]), "r"(a.x[1]), "r"(a.x[2]), "r"(a.x[3]), "r"(b.x[0]), "r"(b.x[1]),
                   "f"(c.x[0]), "f"(c.x[1]), "f"(c.x[2]), "f"(c.x[3]));
}
#define wkv5t_mma(d, a, b, c) wkv5t_mma_ptx(d, a, b, c)
#endif

// One warp: D = A B + C with each matrix read and written through its own strides (the test of the fragment layout and
// of the emulation against a scalar reference, on the emulated device and on a GPU alike). Launch with 32 threads.
extern "C" __global__ void __launch_bounds__(32) wkv5t_mma_probe(const unsigned short* a, int ars, int acs,
        const unsigned short* b, int brs, int bcs, const float* c, int crs, int ccs, float* d, int drs, int dcs) {
    Wkv5tA fa;
    Wkv5tB fb;
    Wkv5tC fc, fd;
    wkv5t_load_a(fa, a, ars, acs);
    wkv5t_load_b(fb, b, brs, bcs);
    for (int i = 0; i < 4; i++) fc.x[i] = c[wkv5t_c_row(i) * crs + wkv5t_c_col(i) * ccs];
    wkv5t_mma(fd, fa, fb, fc);
    for (int i = 0; i < 4; i++) d[wkv5t_c_row(i) * drs + wkv5t_c_col(i) * dcs] = fd.x[i];
}

template <int N, int L>
__device__ void wkv5t_forward_impl(int T, int C, const unsigned short* __restrict__ r, const unsigned short* __restrict__ k,
                                   const unsigned short* __restrict__ v, const float* __restrict__ w,
                                   const unsigned short* __restrict__ u, float* __restrict__ state, float* __restrict__ y) {
    static_assert(L == 16 && N % 16 == 0 && N / 16 <= WKV5C_THREADS / 32, "tensor-core WKV: L = 16, N = 16..64 by 16");
    constexpr int VT = 16, TILES = N / 16, LDN = N + 8, LDT = 16 + 8;   // padded rows (fewer shared-memory bank conflicts)
    const int h = blockIdx.x / TILES, j0 = (blockIdx.x % TILES) * VT, tid = threadIdx.x, warp = tid >> 5;
    __shared__ float sr[L][N], sk[L][N], pw[L + 1][N], su[N], sa[L][L], sv[L][VT];
    __shared__ unsigned short brw[L][LDN], bkw[L][LDN], ba[L][LDT], bv[L][LDT], bs[N][LDT];
    float* st = state + (size_t)h * N * N;
    wkv5c_powers<N, L>(w + h * N, pw, nullptr);
    for (int i = tid; i < N; i += blockDim.x) su[i] = wkv5c_in(u[h * N + i]);
    // warp m < N / 16 owns state rows 16m..16m+15 of this tile, as two 16x8 accumulators (value columns 0..7, 8..15)
    const bool owns = warp < N / 16;
    Wkv5tC S[2];
    for (int n = 0; n < 2; n++) for (int i = 0; i < 4; i++) {
        S[n].x[i] = owns ? st[(size_t)(16 * warp + wkv5t_c_row(i)) * N + j0 + 8 * n + wkv5t_c_col(i)] : 0.f;
    }
    for (int t0 = 0; t0 < T; t0 += L) {
        const int len = T - t0 < L ? T - t0 : L;
        __syncthreads();                               // the previous chunk is done with every shared array
        wkv5c_load<N, L, unsigned short>(t0, len, C, h, j0, r, k, v, sr, sk, sv);
        if (owns) for (int n = 0; n < 2; n++) for (int i = 0; i < 4; i++) {
            bs[16 * warp + wkv5t_c_row(i)][8 * n + wkv5t_c_col(i)] = wkv5t_bf16(S[n].x[i]);
        }
        __syncthreads();
        wkv5c_attention<N, L>(len, sr, sk, su, pw, sa);
        for (int e = tid; e < L * N; e += blockDim.x) {
            const int t = e / N, i = e % N;
            brw[t][i] = wkv5t_bf16(sr[t][i] * pw[t][i]);                               // 0 past len (sr is)
            bkw[t][i] = t < len ? wkv5t_bf16(sk[t][i] * pw[len - 1 - t][i]) : (unsigned short)0;
        }
        for (int e = tid; e < L * VT; e += blockDim.x) bv[e / VT][e % VT] = wkv5t_bf16(sv[e / VT][e % VT]);   // exact
        __syncthreads();
        for (int e = tid; e < L * L; e += blockDim.x) ba[e / L][e % L] = wkv5t_bf16(sa[e / L][e % L]);
        __syncthreads();
        if (warp < 2) {                                // y, value columns 8 warp .. 8 warp + 7
            Wkv5tA fa;
            Wkv5tB fb;
            Wkv5tC acc = {{0.f, 0.f, 0.f, 0.f}};
            for (int kk = 0; kk < N; kk += 16) {
                wkv5t_load_a(fa, &brw[0][kk], LDN, 1);
                wkv5t_load_b(fb, &bs[kk][8 * warp], LDT, 1);
                wkv5t_mma(acc, fa, fb, acc);
            }
            wkv5t_load_a(fa, &ba[0][0], LDT, 1);
            wkv5t_load_b(fb, &bv[0][8 * warp], LDT, 1);
            wkv5t_mma(acc, fa, fb, acc);
            for (int i = 0; i < 4; i++) {
                const int t = wkv5t_c_row(i);
                if (t < len) y[(size_t)(t0 + t) * C + h * N + j0 + 8 * warp + wkv5t_c_col(i)] = acc.x[i];
            }
        }
        if (owns) {                                    // S <- w^len (.) S + (k (.) w^(len-1-s))^T v on rows 16 warp..
            Wkv5tA fa;
            Wkv5tB fb;
            wkv5t_load_a(fa, &bkw[0][16 * warp], 1, LDN);   // A[i][s] = bkw[s][16 warp + i]: column-major
            for (int n = 0; n < 2; n++) {
                for (int i = 0; i < 4; i++) S[n].x[i] *= pw[len][16 * warp + wkv5t_c_row(i)];
                wkv5t_load_b(fb, &bv[0][8 * n], LDT, 1);
                wkv5t_mma(S[n], fa, fb, S[n]);
            }
        }
    }
    if (owns) for (int n = 0; n < 2; n++) for (int i = 0; i < 4; i++) {
        st[(size_t)(16 * warp + wkv5t_c_row(i)) * N + j0 + 8 * n + wkv5t_c_col(i)] = S[n].x[i];
    }
}

// Backward on tensor cores, the same contract and outputs as wkv5c_backward_impl (it follows wkv5c_states_* for the
// chunk-start states, and wkv5c_reduce sums its per-tile parts). The products of a chunk, bf16 operands and fp32
// accumulation (G = dL/dy, D = dL/dS at the chunk's end, fp32 in registers across chunks like the forward's S):
//   dA   = bf16(gy) . v^T                         (16 x 16: the tile's part of gy_t . v_s)
//   dv   = bf16(A)^T . bf16(gy) + bf16(k w^(L-1-s)) . bf16(D)
//   G    = bf16(S) . bf16(gy)^T,  H = bf16(D) . v^T    (N x 16: (S gy_t)[i] and (D v_s)[i], for dr, dk and dw)
//   D   <- w^L (.) D + bf16(r w^t)^T . bf16(gy)
// The per-key-channel sums (dr, dk, dw, du with the intra-chunk pairs) stay fp32 FMA as in wkv5c_backward_impl.
// Roundings per term, relative to exact arithmetic on the same bf16 inputs: a term enters D through bf16(r w^t) and
// bf16(gy) (2) and is rounded again in bf16(D) where D is an operand (3); S (fp32 from wkv5c_states) only in bf16(S);
// so dv <= 4 (k w, D), dr 2 (S, gy), dk 3 (D), dw 3 (through H), du 1 (dA), dL/dS_0 2. CudaTensorCoreWkvTest checks
// exactly that bound. Static shared memory ~45 KiB at N = 64 (under the 48 KiB of a static allocation).
template <int N, int L>
__device__ void wkv5t_backward_impl(int T, int C, const unsigned short* __restrict__ r, const unsigned short* __restrict__ k,
                                    const unsigned short* __restrict__ v, const float* __restrict__ w,
                                    const unsigned short* __restrict__ u, const float* __restrict__ dy,
                                    const float* __restrict__ states, float* __restrict__ dState, float* __restrict__ dv,
                                    float* __restrict__ grp, float* __restrict__ gkp, float* __restrict__ dwp,
                                    float* __restrict__ dup) {
    static_assert(L == 16 && N % 16 == 0 && N / 16 <= WKV5C_THREADS / 32 && 2 * N <= WKV5C_THREADS,
                  "tensor-core WKV backward: L = 16, N = 16..64 by 16");
    constexpr int VT = 16, TILES = N / 16, LDN = N + 8, LDT = 16 + 8;
    const int tile = blockIdx.x % TILES, h = blockIdx.x / TILES, j0 = tile * VT;
    const int chunks = (T + L - 1) / L, tid = threadIdx.x, warp = tid >> 5;
    __shared__ float sr[L][N], sk[L][N], pw[L + 1][N], dpw[L + 1][N], su[N], sa[L][L], sda[L][L];
    __shared__ float sv[L][VT], sd[N][VT], sg[N][L], sh[N][L];
    __shared__ unsigned short brw[L][LDN], bkw[L][LDN], ba[L][LDT], bgy[L][LDT], bv[L][LDT], bS[N][LDT], bD[N][LDT];
    __shared__ double sdw[N];
    wkv5c_powers<N, L>(w + h * N, pw, dpw);
    for (int i = tid; i < N; i += blockDim.x) su[i] = wkv5c_in(u[h * N + i]);
    float* ds = dState + (size_t)h * N * N;
    const bool owns = warp < N / 16;                 // warp m owns rows 16m..16m+15 of D, G and H
    Wkv5tC D[2];
    for (int n = 0; n < 2; n++) for (int i = 0; i < 4; i++) {
        D[n].x[i] = owns ? ds[(size_t)(16 * warp + wkv5t_c_row(i)) * N + j0 + 8 * n + wkv5t_c_col(i)] : 0.f;
    }
    double dwAcc = 0.0, duAcc = 0.0;
    float* gp = (tid < N ? grp : gkp) + (size_t)tile * T * C;
    for (int c = chunks - 1; c >= 0; c--) {
        const int t0 = c * L, len = T - t0 < L ? T - t0 : L;
        const float* sc = states + ((size_t)h * chunks + c) * N * N;
        __syncthreads();                               // the previous chunk is done with every shared array
        wkv5c_load<N, L, unsigned short>(t0, len, C, h, j0, r, k, v, sr, sk, sv);
        for (int e = tid; e < L * VT; e += blockDim.x) {
            const int t = e / VT, jj = e % VT;
            bgy[t][jj] = wkv5t_bf16(t < len ? dy[(size_t)(t0 + t) * C + h * N + j0 + jj] : 0.f);
        }
        for (int e = tid; e < N * VT; e += blockDim.x) bS[e / VT][e % VT] = wkv5t_bf16(sc[(e / VT) * N + j0 + e % VT]);
        if (owns) for (int n = 0; n < 2; n++) for (int i = 0; i < 4; i++) {
            const int row = 16 * warp + wkv5t_c_row(i), col = 8 * n + wkv5t_c_col(i);
            sd[row][col] = D[n].x[i];
            bD[row][col] = wkv5t_bf16(D[n].x[i]);
        }
        __syncthreads();
        wkv5c_attention<N, L>(len, sr, sk, su, pw, sa);
        for (int e = tid; e < L * N; e += blockDim.x) {
            const int t = e / N, i = e % N;
            brw[t][i] = wkv5t_bf16(sr[t][i] * pw[t][i]);
            bkw[t][i] = t < len ? wkv5t_bf16(sk[t][i] * pw[len - 1 - t][i]) : (unsigned short)0;
        }
        for (int e = tid; e < L * VT; e += blockDim.x) bv[e / VT][e % VT] = wkv5t_bf16(sv[e / VT][e % VT]);   // exact
        __syncthreads();
        for (int e = tid; e < L * L; e += blockDim.x) ba[e / L][e % L] = wkv5t_bf16(sa[e / L][e % L]);
        __syncthreads();
        Wkv5tA fa;
        Wkv5tB fb;
        if (warp < 2) {                                // dA[t][s] for s = 8 warp .. 8 warp + 7
            Wkv5tC acc = {{0.f, 0.f, 0.f, 0.f}};
            wkv5t_load_a(fa, &bgy[0][0], LDT, 1);
            wkv5t_load_b(fb, &bv[8 * warp][0], 1, LDT);
            wkv5t_mma(acc, fa, fb, acc);
            for (int i = 0; i < 4; i++) sda[wkv5t_c_row(i)][8 * warp + wkv5t_c_col(i)] = acc.x[i];
        } else if (warp < 4) {                         // dv_s, value columns 8 (warp - 2) ..
            const int nt = warp - 2;
            Wkv5tC acc = {{0.f, 0.f, 0.f, 0.f}};
            wkv5t_load_a(fa, &ba[0][0], 1, LDT);           // A^T: element (s, t) = A[t][s]
            wkv5t_load_b(fb, &bgy[0][8 * nt], LDT, 1);
            wkv5t_mma(acc, fa, fb, acc);
            for (int kk = 0; kk < N; kk += 16) {
                wkv5t_load_a(fa, &bkw[0][kk], LDN, 1);
                wkv5t_load_b(fb, &bD[kk][8 * nt], LDT, 1);
                wkv5t_mma(acc, fa, fb, acc);
            }
            for (int i = 0; i < 4; i++) {
                const int s = wkv5t_c_row(i);
                if (s < len) dv[(size_t)(t0 + s) * C + h * N + j0 + 8 * nt + wkv5t_c_col(i)] = acc.x[i];
            }
        }
        if (owns) {
            for (int n = 0; n < 2; n++) {              // G and H, times / tokens 8n .. 8n + 7
                Wkv5tC g = {{0.f, 0.f, 0.f, 0.f}}, hm = {{0.f, 0.f, 0.f, 0.f}};
                wkv5t_load_a(fa, &bS[16 * warp][0], LDT, 1);
                wkv5t_load_b(fb, &bgy[8 * n][0], 1, LDT);
                wkv5t_mma(g, fa, fb, g);
                wkv5t_load_a(fa, &bD[16 * warp][0], LDT, 1);
                wkv5t_load_b(fb, &bv[8 * n][0], 1, LDT);
                wkv5t_mma(hm, fa, fb, hm);
                for (int i = 0; i < 4; i++) {
                    sg[16 * warp + wkv5t_c_row(i)][8 * n + wkv5t_c_col(i)] = g.x[i];
                    sh[16 * warp + wkv5t_c_row(i)][8 * n + wkv5t_c_col(i)] = hm.x[i];
                }
            }
            wkv5t_load_a(fa, &brw[0][16 * warp], 1, LDN);   // (r w^t)^T: element (i, t) = brw[t][i]
            for (int n = 0; n < 2; n++) {              // D <- w^len (.) D + (r (.) w^t)^T gy
                for (int i = 0; i < 4; i++) D[n].x[i] *= pw[len][16 * warp + wkv5t_c_row(i)];
                wkv5t_load_b(fb, &bgy[0][8 * n], LDT, 1);
                wkv5t_mma(D[n], fa, fb, D[n]);
            }
        }
        __syncthreads();
        if (tid < N) {
            const int i = tid;
            float dwc = 0.f, duc = 0.f, dsum = 0.f;
            for (int jj = 0; jj < VT; jj++) dsum = fmaf(sd[i][jj], sc[i * N + j0 + jj], dsum);
            dwc = dpw[len][i] * dsum;                                       // D (.) S through w^len
            for (int t = 0; t < len; t++) {
                const float g = sg[i][t], rt = sr[t][i], diag = sda[t][t];
                float gr = fmaf(pw[t][i], g, diag * su[i] * sk[t][i]);
                duc = fmaf(diag, rt * sk[t][i], duc);
                dwc = fmaf(rt * dpw[t][i], g, dwc);
                for (int s = 0; s < t; s++) {
                    const float a = sda[t][s], ks = sk[s][i];
                    gr = fmaf(a, ks * pw[t - 1 - s][i], gr);
                    dwc = fmaf(a * (rt * ks), dpw[t - 1 - s][i], dwc);
                }
                gp[(size_t)(t0 + t) * C + h * N + i] = gr;
            }
            dwAcc += (double)dwc;
            duAcc += (double)duc;
        } else if (tid < 2 * N) {
            const int i = tid - N;
            float dwc = 0.f;
            for (int s = 0; s < len; s++) {
                const float hm = sh[i][s], ks = sk[s][i];
                float gk = fmaf(pw[len - 1 - s][i], hm, sda[s][s] * su[i] * sr[s][i]);
                dwc = fmaf(ks * dpw[len - 1 - s][i], hm, dwc);
                for (int t = s + 1; t < len; t++) gk = fmaf(sda[t][s], sr[t][i] * pw[t - 1 - s][i], gk);
                gp[(size_t)(t0 + s) * C + h * N + i] = gk;
            }
            dwAcc += (double)dwc;
        }
    }
    if (tid >= N && tid < 2 * N) sdw[tid - N] = dwAcc;
    __syncthreads();
    if (owns) for (int n = 0; n < 2; n++) for (int i = 0; i < 4; i++) {
        ds[(size_t)(16 * warp + wkv5t_c_row(i)) * N + j0 + 8 * n + wkv5t_c_col(i)] = D[n].x[i];
    }
    if (tid < N) {
        dwp[(size_t)tile * C + h * N + tid] = (float)(dwAcc + sdw[tid]);
        dup[(size_t)tile * C + h * N + tid] = (float)duAcc;
    }
}

#define WKV5T_INSTANTIATE(N)                                                                                           \
extern "C" __global__ void __launch_bounds__(WKV5C_THREADS) wkv5t_forward_n##N##_bf16(int T, int C,                    \
        const unsigned short* r, const unsigned short* k, const unsigned short* v, const float* w,                     \
        const unsigned short* u, float* state, float* y) {                                                             \
    wkv5t_forward_impl<N, WKV5C_L>(T, C, r, k, v, w, u, state, y);                                                     \
}                                                                                                                      \
extern "C" __global__ void __launch_bounds__(WKV5C_THREADS) wkv5t_backward_n##N##_bf16(int T, int C,                   \
        const unsigned short* r, const unsigned short* k, const unsigned short* v, const float* w,                     \
        const unsigned short* u, const float* dy, const float* states, float* dState, float* dv, float* grp,          \
        float* gkp, float* dwp, float* dup) {                                                                          \
    wkv5t_backward_impl<N, WKV5C_L>(T, C, r, k, v, w, u, dy, states, dState, dv, grp, gkp, dwp, dup);                  \
}

#define WKV5C_INSTANTIATE(N, TIN, SUFFIX)                                                                              \
extern "C" __global__ void __launch_bounds__(WKV5C_THREADS) wkv5c_forward_n##N##_##SUFFIX(int T, int C, const TIN* r, \
        const TIN* k, const TIN* v, const float* w, const TIN* u, float* state, float* y) {                           \
    wkv5c_forward_impl<N, WKV5C_L, TIN>(T, C, r, k, v, w, u, state, y);                                                \
}                                                                                                                      \
extern "C" __global__ void __launch_bounds__(WKV5C_THREADS) wkv5c_states_n##N##_##SUFFIX(int T, int C, const TIN* k,  \
        const TIN* v, const float* w, const float* state0, float* states) {                                           \
    wkv5c_states_impl<N, WKV5C_L, TIN>(T, C, k, v, w, state0, states);                                                 \
}                                                                                                                      \
extern "C" __global__ void __launch_bounds__(WKV5C_THREADS) wkv5c_backward_n##N##_##SUFFIX(int T, int C, const TIN* r,\
        const TIN* k, const TIN* v, const float* w, const TIN* u, const float* dy, const float* states,               \
        float* dState, float* dv, float* grp, float* gkp, float* dwp, float* dup) {                                    \
    wkv5c_backward_impl<N, WKV5C_L, TIN>(T, C, r, k, v, w, u, dy, states, dState, dv, grp, gkp, dwp, dup);             \
}

// The head sizes of wkv5.cu (2N <= WKV5C_THREADS), each with fp32 inputs (what the backend launches) and bf16 inputs.
WKV5C_INSTANTIATE(1, float, f32)
WKV5C_INSTANTIATE(2, float, f32)
WKV5C_INSTANTIATE(4, float, f32)
WKV5C_INSTANTIATE(8, float, f32)
WKV5C_INSTANTIATE(16, float, f32)
WKV5C_INSTANTIATE(32, float, f32)
WKV5C_INSTANTIATE(64, float, f32)
WKV5C_INSTANTIATE(8, unsigned short, bf16)
WKV5C_INSTANTIATE(32, unsigned short, bf16)
WKV5C_INSTANTIATE(64, unsigned short, bf16)

// The tensor-core forward and backward (bf16 inputs; the backward's chunk-start states come from wkv5c_states_n*_bf16).
WKV5T_INSTANTIATE(32)
WKV5T_INSTANTIATE(64)
