// WKV5 (RWKV-5 linear attention) for one sequence, fp32, with an initial state in and the final state out, and its
// exact backward with dL/dS_T in and dL/dS_0 out (rwkv5-spec.md section 5, general form).
//
// Layouts (as the Backend interface): r, k, v, y, dy, dr, dk, dv are [T, C] with C = H*N, head h at columns h*N..;
// w (decay factor exp(-exp(time_decay))), u (time_faaaa), dw, du are [H, N]; states are [H, N(key i), N(value j)].
//
// One block per head (heads are independent); the T steps are sequential. N is a template parameter so that each
// thread keeps its row or column of the N x N state in registers; extern "C" wrappers give each N a plain name.
// Compiled with --fmad=false: every fused multiply-add below is an explicit fmaf, as in the CPU reference.

template <int N>
__device__ void wkv5_forward_impl(int T, int C, const float* __restrict__ r, const float* __restrict__ k,
                                  const float* __restrict__ v, const float* __restrict__ w,
                                  const float* __restrict__ u, float* __restrict__ state, float* __restrict__ y) {
    const int h = blockIdx.x, j = threadIdx.x;   // thread j owns value column j: y_t[j] needs only S[:, j]
    __shared__ float sr[N], sk[N], sw[N], su[N];
    float* st = state + (size_t)h * N * N;
    float s[N];
#pragma unroll
    for (int i = 0; i < N; i++) s[i] = st[i * N + j];
    sw[j] = w[h * N + j];
    su[j] = u[h * N + j];
    for (int t = 0; t < T; t++) {
        const size_t base = (size_t)t * C + h * N;
        __syncthreads();                 // everyone has finished reading the previous step's r and k
        sr[j] = r[base + j];
        sk[j] = k[base + j];
        __syncthreads();
        const float vj = v[base + j];
        float yj = 0.f;
#pragma unroll
        for (int i = 0; i < N; i++) {
            const float ri = sr[i], ki = sk[i], uki = su[i] * ki, sij = s[i];
            yj = fmaf(ri, fmaf(uki, vj, sij), yj);      // y_j += r_i (u_i k_i v_j + S_ij)
            s[i] = fmaf(ki, vj, sw[i] * sij);           // S_ij = w_i S_ij + k_i v_j
        }
        y[base + j] = yj;
    }
#pragma unroll
    for (int i = 0; i < N; i++) st[i * N + j] = s[i];
}

// Backward, part 1: a forward scan from S_0 that needs the states S_t (so it runs in time order and never stores
// them). Thread i owns key row i of S and of Q_t = sum_{s<t} w^(t-1-s) S_s, which turns
//   dw_i = sum_t rowsum(A_{t+1} (.) S_t)   (A_{t+1} = dL/dS_{t+1})
// into the forward-only form dw_i = sum_t r_t[i] (Q_t gy_t)[i] + rowsum(Q_T (.) dS_T)[i] (expand A_{t+1} as the
// decayed sum of the r_tau gy_tau^T that follow plus w^(T-1-t) dS_T, and swap the sums).
// Writes dr (overwrite); adds into dw and du.
template <int N>
__device__ void wkv5_backward_state_scan_impl(int T, int C, const float* __restrict__ r, const float* __restrict__ k,
                                              const float* __restrict__ v, const float* __restrict__ w,
                                              const float* __restrict__ u, const float* __restrict__ state0,
                                              const float* __restrict__ dy, const float* __restrict__ dState,
                                              float* __restrict__ dr, float* __restrict__ dw, float* __restrict__ du) {
    const int h = blockIdx.x, i = threadIdx.x;
    __shared__ float sv[N], sgy[N];
    float s[N], q[N];
    const float* s0 = state0 + (size_t)h * N * N;
#pragma unroll
    for (int j = 0; j < N; j++) { s[j] = s0[i * N + j]; q[j] = 0.f; }
    const float wi = w[h * N + i], ui = u[h * N + i];
    double dwAcc = 0.0, duAcc = 0.0;
    for (int t = 0; t < T; t++) {
        const size_t base = (size_t)t * C + h * N;
        __syncthreads();
        sv[i] = v[base + i];
        sgy[i] = dy[base + i];
        __syncthreads();
        const float ri = r[base + i], ki = k[base + i];
        float vgy = 0.f, sgy_i = 0.f, qgy = 0.f;
#pragma unroll
        for (int j = 0; j < N; j++) {
            const float gyj = sgy[j];
            vgy = fmaf(sv[j], gyj, vgy);
            sgy_i = fmaf(s[j], gyj, sgy_i);
            qgy = fmaf(q[j], gyj, qgy);
        }
        dr[base + i] = ui * ki * vgy + sgy_i;            // gr_t = (u (.) k_t)(v_t . gy_t) + S_t gy_t
        duAcc += (double)(ri * ki * vgy);                // gu += r_t (.) k_t (v_t . gy_t)
        dwAcc += (double)(ri * qgy);
#pragma unroll
        for (int j = 0; j < N; j++) {
            q[j] = fmaf(wi, q[j], s[j]);                 // Q_{t+1} = w Q_t + S_t
            s[j] = fmaf(ki, sv[j], wi * s[j]);           // S_{t+1} = w S_t + k_t v_t^T
        }
    }
    const float* dst = dState + (size_t)h * N * N;
    float tail = 0.f;
#pragma unroll
    for (int j = 0; j < N; j++) tail = fmaf(q[j], dst[i * N + j], tail);
    dwAcc += (double)tail;
    dw[h * N + i] += (float)dwAcc;
    du[h * N + i] += (float)duAcc;
}

// Backward, part 2: the reverse scan of A = dL/dS_{t+1}, which needs no states. 2N threads: threads 0..N-1 own key
// row i of A (for gk, a sum over j), threads N..2N-1 own value column j of A (for gv, a sum over i). Both halves apply
// the same update A = r_t gy_t^T + diag(w) A with the same arithmetic, so they hold identical copies.
// Writes dk, dv (overwrite) and replaces dState (dL/dS_T on entry) by dL/dS_0.
template <int N>
__device__ void wkv5_backward_reverse_scan_impl(int T, int C, const float* __restrict__ r, const float* __restrict__ k,
                                                const float* __restrict__ v, const float* __restrict__ w,
                                                const float* __restrict__ u, const float* __restrict__ dy,
                                                float* __restrict__ dState, float* __restrict__ dk,
                                                float* __restrict__ dv) {
    const int h = blockIdx.x, tid = threadIdx.x;
    const bool rowOwner = tid < N;
    const int me = rowOwner ? tid : tid - N;
    __shared__ float sr[N], sk[N], sv[N], sgy[N], sw[N], su[N];
    float* ds = dState + (size_t)h * N * N;
    float a[N];
#pragma unroll
    for (int x = 0; x < N; x++) a[x] = rowOwner ? ds[me * N + x] : ds[x * N + me];
    if (rowOwner) { sw[me] = w[h * N + me]; su[me] = u[h * N + me]; }
    for (int t = T - 1; t >= 0; t--) {
        const size_t base = (size_t)t * C + h * N;
        __syncthreads();
        if (rowOwner) { sr[me] = r[base + me]; sk[me] = k[base + me]; }
        else { sv[me] = v[base + me]; sgy[me] = dy[base + me]; }
        __syncthreads();
        if (rowOwner) {
            const int i = me;
            const float ri = sr[i], wi = sw[i];
            float vgy = 0.f, av = 0.f;
#pragma unroll
            for (int j = 0; j < N; j++) {
                vgy = fmaf(sv[j], sgy[j], vgy);
                av = fmaf(a[j], sv[j], av);
            }
            dk[base + i] = su[i] * ri * vgy + av;        // gk_t = (u (.) r_t)(gy_t . v_t) + A v_t
#pragma unroll
            for (int j = 0; j < N; j++) a[j] = fmaf(sgy[j], ri, a[j] * wi);
        } else {
            const int j = me;
            const float gyj = sgy[j];
            float rku = 0.f;
#pragma unroll
            for (int i = 0; i < N; i++) rku = fmaf(sr[i] * su[i], sk[i], rku);
            float gv = rku * gyj;                        // gv_t = (r_t^T diag(u) k_t) gy_t + A^T k_t
#pragma unroll
            for (int i = 0; i < N; i++) gv = fmaf(a[i], sk[i], gv);
            dv[base + j] = gv;
#pragma unroll
            for (int i = 0; i < N; i++) a[i] = fmaf(gyj, sr[i], a[i] * sw[i]);
        }
    }
    __syncthreads();   // every thread has read dState (the loop's barriers do not run when T = 0) before it is replaced
    if (rowOwner) {
#pragma unroll
        for (int j = 0; j < N; j++) ds[me * N + j] = a[j];
    }
}

#define WKV5_INSTANTIATE(N)                                                                                          \
extern "C" __global__ void __launch_bounds__(N) wkv5_forward_n##N(int T, int C, const float* r, const float* k,     \
        const float* v, const float* w, const float* u, float* state, float* y) {                                   \
    wkv5_forward_impl<N>(T, C, r, k, v, w, u, state, y);                                                             \
}                                                                                                                    \
extern "C" __global__ void __launch_bounds__(N) wkv5_backward_state_scan_n##N(int T, int C, const float* r,         \
        const float* k, const float* v, const float* w, const float* u, const float* state0, const float* dy,        \
        const float* dState, float* dr, float* dw, float* du) {                                                      \
    wkv5_backward_state_scan_impl<N>(T, C, r, k, v, w, u, state0, dy, dState, dr, dw, du);                           \
}                                                                                                                    \
extern "C" __global__ void __launch_bounds__(2 * N) wkv5_backward_reverse_scan_n##N(int T, int C, const float* r,   \
        const float* k, const float* v, const float* w, const float* u, const float* dy, float* dState, float* dk,   \
        float* dv) {                                                                                                 \
    wkv5_backward_reverse_scan_impl<N>(T, C, r, k, v, w, u, dy, dState, dk, dv);                                     \
}

// Head sizes: 64 for every released x052 model; the small ones for tests (the rwkv.cpp oracle has N = 8).
WKV5_INSTANTIATE(1)
WKV5_INSTANTIATE(2)
WKV5_INSTANTIATE(4)
WKV5_INSTANTIATE(8)
WKV5_INSTANTIATE(16)
WKV5_INSTANTIATE(32)
WKV5_INSTANTIATE(64)
