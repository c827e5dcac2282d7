#!/usr/bin/env bash
# Mutation check of the CUDA kernels: injects one single-line bug at a time into the real .cu sources (a removed
# barrier, a barrier inside a branch, a transposed index, an off-by-one bound, a missing term, ...) and runs the
# emulated suite against it: CudaParityTest, CudaBf16Test and Bf16RoundingTest on the emulated device first, then,
# for a mutant they did not catch, the ThreadSanitizer replay. Prints one line per mutant and "caught K of N" last;
# exit code 0 only when all are caught.
# Takes about a minute per mutant on 2 cores. Not part of CI (it rebuilds the core module once per mutant).
#   scripts/kernel-mutants.sh [FILTER]      only the mutants whose id contains FILTER
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
src="$root/core/src/main/resources/ai/longrwkv/core/backend/cuda"
filter="${1:-}"
log="$(mktemp -d)"
backup="$log/backup"; mkdir -p "$backup"; cp "$src"/*.cu "$backup/"
restore() { cp "$backup"/*.cu "$src/"; }
trap 'restore; echo "logs in $log"' EXIT

# id | file | original text (must occur exactly once) | replacement
mutants=$(cat <<'LIST'
wkv-fwd-no-barrier|wkv5.cu|        __syncthreads();                 // everyone has finished reading the previous step's r and k|        // (barrier removed)
wkv-rev-barrier-in-branch|wkv5.cu|        else { sv[me] = v[base + me]; sgy[me] = dy[base + me]; }\n        __syncthreads();|        else { sv[me] = v[base + me]; sgy[me] = dy[base + me]; }\n        if (rowOwner) __syncthreads();
wkv-fwd-transposed-state|wkv5.cu|    for (int i = 0; i < N; i++) s[i] = st[i * N + j];|    for (int i = 0; i < N; i++) s[i] = st[j * N + i];
wkv-scan-missing-tail|wkv5.cu|    dwAcc += (double)tail;|    (void)tail;
wkv-rev-missing-decay|wkv5.cu|            for (int j = 0; j < N; j++) a[j] = fmaf(sgy[j], ri, a[j] * wi);|            for (int j = 0; j < N; j++) a[j] = fmaf(sgy[j], ri, a[j]);
wkv-rev-t0-barrier|wkv5.cu|    __syncthreads();   // every thread has read dState (the loop's barriers do not run when T = 0) before it is replaced|    // (barrier removed)
elementwise-off-by-one|elementwise.cu|#define GRID_STRIDE(i, n) for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n); \\|#define GRID_STRIDE(i, n) for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i <= (n); \\
shift-wrong-index|elementwise.cu|        float sx = t == 0 ? prev[c] : xx[i - C];|        float sx = t == 0 ? prev[c] : xx[i - 1];
adamw-missing-decay|elementwise.cu|        p[i] = p[i] * decay - stepSize * mi / denom;|        p[i] = p[i] - stepSize * mi / denom;
sumsq-no-barrier|elementwise.cu|        if (threadIdx.x < s) sh[threadIdx.x] += sh[threadIdx.x + s];\n        __syncthreads();\n    }\n    if (threadIdx.x == 0) partial|        if (threadIdx.x < s) sh[threadIdx.x] += sh[threadIdx.x + s];\n    }\n    if (threadIdx.x == 0) partial
norm-reuse-race|norm.cu|    __syncthreads();   // sh is reused by the next call|    // (barrier removed)
norm-missing-term|norm.cu|        dx[base + i] += s * (dOut[base + i] * w[c] - meanD - xhat * meanDX);|        dx[base + i] += s * (dOut[base + i] * w[c] - meanD);
norm-params-off-by-one|norm.cu|        for (int r = 0; r < rows; r++) {|        for (int r = 0; r <= rows; r++) {
loss-reduction-bound|loss.cu|    for (int s = blockDim.x / 2; s > 0; s >>= 1) {\n        if (tid < s) {|    for (int s = blockDim.x / 2; s > 1; s >>= 1) {\n        if (tid < s) {
wkvc-fwd-no-barrier|wkv5_chunked.cu|        __syncthreads();                               // y has read ss|        // (barrier removed)
wkvc-state-missing-decay|wkv5_chunked.cu|        float acc = pw[len][i] * ss[i][jj];|        float acc = ss[i][jj];
wkvc-fwd-missing-bonus|wkv5_chunked.cu|            for (int s = 0; s <= t; s++) acc = fmaf(sa[t][s], sv[s][jj], acc);|            for (int s = 0; s < t; s++) acc = fmaf(sa[t][s], sv[s][jj], acc);
wkvc-bwd-missing-intra-dw|wkv5_chunked.cu|                    dwc = fmaf(a * (rt * ks), dpw[t - 1 - s][i], dwc);|                    (void)ks;
wkvt-state-missing-decay|wkv5_chunked.cu|                for (int i = 0; i < 4; i++) S[n].x[i] *= pw[len][16 * warp + wkv5t_c_row(i)];|                (void)n;
wkvt-kw-read-row-major|wkv5_chunked.cu|            wkv5t_load_a(fa, &bkw[0][16 * warp], 1, LDN);|            wkv5t_load_a(fa, &bkw[0][16 * warp], LDN, 1);
wkvt-y-without-intra|wkv5_chunked.cu|            wkv5t_load_a(fa, &ba[0][0], LDT, 1);|            wkv5t_load_a(fa, &brw[0][0], LDN, 1);
wkvt-kw-decay-off-by-one|wkv5_chunked.cu|// 0 past len (sr is)\n            bkw[t][i] = t < len ? wkv5t_bf16(sk[t][i] * pw[len - 1 - t][i])|// 0 past len (sr is)\n            bkw[t][i] = t < len ? wkv5t_bf16(sk[t][i] * pw[len - t][i])
wkvt-bwd-state-missing-decay|wkv5_chunked.cu|                for (int i = 0; i < 4; i++) D[n].x[i] *= pw[len][16 * warp + wkv5t_c_row(i)];|                (void)n;
wkvt-bwd-dv-without-state-term|wkv5_chunked.cu|            for (int kk = 0; kk < N; kk += 16) {\n                wkv5t_load_a(fa, &bkw[0][kk], LDN, 1);|            for (int kk = 0; kk < 0; kk += 16) {\n                wkv5t_load_a(fa, &bkw[0][kk], LDN, 1);
wkvt-bwd-sg-transposed|wkv5_chunked.cu|                wkv5t_load_b(fb, &bgy[8 * n][0], 1, LDT);|                wkv5t_load_b(fb, &bgy[0][8 * n], LDT, 1);
wkvt-bwd-no-barrier-before-sums|wkv5_chunked.cu|        __syncthreads();\n        if (tid < N) {\n            const int i = tid;\n            float dwc = 0.f, duc = 0.f, dsum = 0.f;\n            for (int jj = 0; jj < VT; jj++) dsum = fmaf(sd[i][jj], sc[i * N + j0 + jj], dsum);|        if (tid < N) {\n            const int i = tid;\n            float dwc = 0.f, duc = 0.f, dsum = 0.f;\n            for (int jj = 0; jj < VT; jj++) dsum = fmaf(sd[i][jj], sc[i * N + j0 + jj], dsum);
wkvc-reduce-one-tile|wkv5_chunked.cu|        for (int p = 0; p < tiles; p++) { a += grp[p * tc + x]; b += gkp[p * tc + x]; }|        for (int p = 0; p < 1; p++) { a += grp[p * tc + x]; b += gkp[p * tc + x]; }
loss-missing-l2wrap|loss.cu|            if (l2WrapFactor > 0.f && i == argmax) g += l2;|            (void)l2;
bf16-round-truncates|bf16.cu|    return (unsigned short)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);|    return (unsigned short)(x >> 16);
bf16-round-ties-away|bf16.cu|    return (unsigned short)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);|    return (unsigned short)((x + 0x8000u) >> 16);
bf16-nan-to-infinity|bf16.cu|    if ((x & 0x7fffffffu) > 0x7f800000u) return 0x7fffu;           // NaN|    // (NaN check removed)
bf16-widen-wrong-shift|bf16.cu|__device__ __forceinline__ float bf16_widen(unsigned short b) { return __uint_as_float(((unsigned)b) << 16); }|__device__ __forceinline__ float bf16_widen(unsigned short b) { return __uint_as_float(((unsigned)b) << 15); }
bf16-embedding-wrong-row|bf16.cu|        out[i] = bf16_widen(table[(long long)ids[t] * C + c]);|        out[i] = bf16_widen(table[(long long)t * C + c]);
LIST
)

total=0; caught=0
printf '%-28s %-16s %s\n' mutant file "caught by"
while IFS='|' read -r id file from to; do
  [ -z "$id" ] && continue
  [ -n "$filter" ] && [[ "$id" != *"$filter"* ]] && continue
  total=$((total + 1))
  restore
  if ! FROM="$from" TO="$to" python3 - "$src/$file" <<'PY'
import os, sys
p = sys.argv[1]; s = open(p).read()
a = os.environ["FROM"].replace("\\n", "\n"); b = os.environ["TO"].replace("\\n", "\n")
a = a.replace("\\\\", "\\"); b = b.replace("\\\\", "\\")
if s.count(a) != 1: sys.exit("mutant text found %d times" % s.count(a))
open(p, "w").write(s.replace(a, b))
PY
  then printf '%-28s %-16s %s\n' "$id" "$file" "NOT APPLIED (source changed?)"; continue; fi
  by=""
  # the tensor-core kernels (wkv5t_*) take bf16 inputs, which the backend's fp32 WKV seam never passes: their own test
  tests='CudaParityTest,CudaBf16Test,Bf16RoundingTest'; [[ "$id" == wkvt-* ]] && tests=CudaTensorCoreWkvTest
  (cd "$root" && mvn -o -q -B -ntp test -pl core -Dtest="$tests" -Dsurefire.failIfNoSpecifiedTests=false) > "$log/$id.parity.txt" 2>&1 \
    || by="parity suite: $(grep -oE '(CudaParityTest|CudaBf16Test|Bf16RoundingTest|CudaTensorCoreWkvTest)\.[a-z][A-Za-z0-9]+:' "$log/$id.parity.txt" | grep -v 'Test\.java:' | sort -u | sed 's/^[A-Za-z0-9]*Test\.//; s/://' | paste -sd, -)"
  if grep -q 'The forked VM terminated' "$log/$id.parity.txt"; then by="parity suite: the JVM crashed (an out-of-bounds access outside the guard zones)"; fi
  if [ -z "$by" ]; then
    (cd "$root" && mvn -o -q -B -ntp test -pl core -Dtest='SanitizerReplayTest#threadSanitizerReportsNothing' -Dsurefire.failIfNoSpecifiedTests=false) > "$log/$id.tsan.txt" 2>&1 \
      || by="ThreadSanitizer replay"
  fi
  if [ -n "$by" ]; then caught=$((caught + 1)); else by="NOT CAUGHT"; fi
  printf '%-28s %-16s %s\n' "$id" "$file" "$by"
done <<< "$mutants"
restore
echo "caught $caught of $total mutants"
[ "$caught" = "$total" ]
