#!/usr/bin/env bash
# Compiles every CUDA kernel source of the CUDA backend with the machine's nvcc, so that a kernel that does not compile
# fails the build even on machines without a GPU (CI has nvcc and no GPU). Runtime compilation uses NVRTC with the same
# flags (CudaKernels.COMPILE_FLAGS); keep the two in step.
#
#   scripts/compile-kernels.sh              check: cubins for every arch into a temporary directory, then deleted
#   scripts/compile-kernels.sh --out DIR    also write DIR/<name>.fatbin (sm_80 + sm_90 SASS), which the backend loads
#                                           instead of compiling when started with -Dlongrwkv.cuda.kernels=DIR
# Environment: NVCC (default: nvcc on PATH, else /usr/local/cuda/bin/nvcc), CUDA_ARCHS (default "80 90").
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
src="$root/core/src/main/resources/ai/longrwkv/core/backend/cuda"
nvcc="${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}"
archs="${CUDA_ARCHS:-80 90}"
out=""
if [ "${1:-}" = "--out" ]; then out="${2:?--out needs a directory}"; mkdir -p "$out"; fi
[ -x "$nvcc" ] || { echo "compile-kernels: nvcc not found (set NVCC)" >&2; exit 1; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
flags=(--fmad=false -std=c++17)
shopt -s nullglob
sources=("$src"/*.cu)
[ ${#sources[@]} -gt 0 ] || { echo "compile-kernels: no .cu files in $src" >&2; exit 1; }
failed=0
for cu in "${sources[@]}"; do
  name="$(basename "$cu" .cu)"
  gencode=()
  for a in $archs; do
    gencode+=(-gencode "arch=compute_$a,code=sm_$a")
    if ! "$nvcc" "${flags[@]}" -arch="sm_$a" -cubin -o "$tmp/$name.sm_$a.cubin" "$cu"; then
      echo "compile-kernels: FAILED $name.cu for sm_$a" >&2
      failed=1
    fi
  done
  if [ -n "$out" ] && [ $failed = 0 ]; then
    "$nvcc" "${flags[@]}" "${gencode[@]}" -fatbin -o "$out/$name.fatbin" "$cu"
    # the backend uses a prebuilt fatbin only when this hash equals the hash of the source inside the jar
    sha256sum "$cu" | cut -d' ' -f1 > "$out/$name.sha256"
  fi
done
[ $failed = 0 ] || exit 1
echo "compile-kernels: ${#sources[@]} kernel sources compile with $("$nvcc" --version | sed -n 's/.*release \([0-9.]*\).*/\1/p') for sm_${archs// /, sm_}${out:+ (fatbins in $out)}"
