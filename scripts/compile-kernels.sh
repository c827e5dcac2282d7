#!/usr/bin/env bash
# Compiles every CUDA kernel source of the CUDA backend with the machine's nvcc, so that a kernel that does not compile
# fails the build even on machines without a GPU (CI has nvcc and no GPU). The flags are read from compile_flags.txt,
# the file the backend's NVRTC compilation reads (NvrtcCompileTest compiles every kernel with NVRTC itself).
#
#   scripts/compile-kernels.sh              check: cubins for every arch into a temporary directory, then deleted
#   scripts/compile-kernels.sh --out DIR    also write DIR/<name>.fatbin (SASS for every arch, plus PTX of the last one
#                                           so that newer GPUs JIT-compile it), which the backend loads instead of
#                                           compiling when started with -Dlongrwkv.cuda.kernels=DIR (scripts/longrwkv
#                                           and gpu-check.sh pass DIR=target/kernels or a bundle's kernels/)
# Environment: NVCC (default: nvcc on PATH, else /usr/local/cuda/bin/nvcc), CUDA_ARCHS (default "80 90 100").
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
src="$root/core/src/main/resources/ai/longrwkv/core/backend/cuda"
nvcc="${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}"
archs="${CUDA_ARCHS:-80 90 100}"
out=""
if [ "${1:-}" = "--out" ]; then out="${2:?--out needs a directory}"; mkdir -p "$out"; fi
# the hash the backend checks before it uses a prebuilt fatbin: KernelSources.hash (the source, then for each header
# its name and bytes); --hashes DIR writes only these (KernelSourcesTest checks they agree with the Java side)
source_hash() {
  { cat "$src/$1.cu"; for h in launch_config.cuh compile_flags.txt; do printf '%s' "$h"; cat "$src/$h"; done; } | sha256sum | cut -d' ' -f1
}
if [ "${1:-}" = "--hashes" ]; then
  mkdir -p "${2:?--hashes needs a directory}"
  for cu in "$src"/*.cu; do n="$(basename "$cu" .cu)"; source_hash "$n" > "$2/$n.sha256"; done
  exit 0
fi
[ -x "$nvcc" ] || { echo "compile-kernels: nvcc not found (set NVCC)" >&2; exit 1; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mapfile -t flags < <(grep -v '^\s*#' "$src/compile_flags.txt" | grep -v '^\s*$')
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
    last="${archs##* }"
    gencode+=(-gencode "arch=compute_$last,code=compute_$last")   # PTX: GPUs newer than every listed arch JIT it
    "$nvcc" "${flags[@]}" "${gencode[@]}" -fatbin -o "$out/$name.fatbin" "$cu"
    source_hash "$name" > "$out/$name.sha256"   # the backend uses the fatbin only when this matches the jar's sources
  fi
done
[ $failed = 0 ] || exit 1
echo "compile-kernels: ${#sources[@]} kernel sources compile with $("$nvcc" --version | sed -n 's/.*release \([0-9.]*\).*/\1/p') for sm_${archs// /, sm_}${out:+ (fatbins in $out)}"
