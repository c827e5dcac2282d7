#!/usr/bin/env bash
# The one script to run on a GPU machine (no Java, Maven or network needed), from a bundle made by
# scripts/make-gpu-bundle.sh: the CUDA parity suite (every kernel and a whole model's forward + full-BPTT backward
# against the CPU backend), a real command through the same launcher users start, and the GPU benchmarks; it never
# stops at the first failure and prints one table last.
#   gpu-check.sh [--emulated] [BUNDLE_DIR]
# BUNDLE_DIR: default the bundle this script sits in, else target/gpu-bundle. --emulated runs everything on the
# emulated CUDA device instead (needs a JDK and g++; quick benchmark shapes): how the script itself is tested without
# a GPU. Budget: a few minutes expected; the timeouts below add up to 9.4 at most. Exit code 0 only when the parity
# suite passed on the device.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
device=cuda
b=""
for a in "$@"; do
  case "$a" in
    --emulated) device=emulated ;;
    *) b="$(cd "$a" && pwd)" ;;
  esac
done
if [ -z "$b" ]; then
  if [ -x "$here/../runtime/bin/java" ]; then b="$(cd "$here/.." && pwd)"; else b="$(cd "$here/.." && pwd)/target/gpu-bundle"; fi
fi
java="$b/runtime/bin/java"
[ -x "$java" ] || { echo "gpu-check: no bundle at $b (run scripts/make-gpu-bundle.sh first)" >&2; exit 2; }
if [ $device = emulated ]; then   # the emulator compiles JNI glue: the machine's JDK, also for the launcher below
  java="${JAVA_HOME:+$JAVA_HOME/bin/}java"
  [ -n "${JAVA_HOME:-}" ] || export JAVA_HOME="$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")"
fi

# Preflight (GPU): the JNI glue links the CUDA 13 user-space libraries, which the bundle does not carry (cuBLAS alone
# is hundreds of MB): libcudart.so.13, libcublas.so.13, libcublasLt.so.13 (and libnvrtc.so.13 when a kernel must be
# compiled). They may sit in a CUDA install or in the Python packages' folders (the nvidia-*-cu13 wheels).
if [ $device = cuda ]; then
  for d in /usr/local/cuda/lib64 /usr/local/cuda-13*/lib64 /usr/local/cuda-13*/targets/x86_64-linux/lib \
           $(ls -d /usr/lib/python3*/*-packages/nvidia/*/lib /usr/local/lib/python3*/*-packages/nvidia/*/lib \
                  /opt/conda/lib/python3*/site-packages/nvidia/*/lib "$HOME"/.local/lib/python3*/site-packages/nvidia/*/lib 2>/dev/null); do
    if compgen -G "$d/lib*.so.13*" >/dev/null || compgen -G "$d/libnccl.so.2*" >/dev/null; then LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"; fi
  done
  export LD_LIBRARY_PATH
  missing=""
  for so in libcuda.so.1 libcudart.so.13 libcublas.so.13 libcublasLt.so.13 libnvrtc.so.13; do
    found=""
    ldconfig -p 2>/dev/null | grep -q " $so " && found=1
    for d in ${LD_LIBRARY_PATH//:/ }; do [ -e "$d/$so" ] && found=1; done
    [ -n "$found" ] || missing="$missing $so"
  done
  [ -n "$missing" ] && echo "gpu-check: WARNING: not found:$missing (install the CUDA 13 runtime, cuBLAS and NVRTC, or set LD_LIBRARY_PATH)"
  # NCCL (multi-GPU training; NcclGpuTest): a distribution package (libnccl2) or the nvidia-nccl-cu13 wheel
  nccl=""
  ldconfig -p 2>/dev/null | grep -q " libnccl.so.2 " && nccl=1
  for d in ${LD_LIBRARY_PATH//:/ }; do [ -e "$d/libnccl.so.2" ] && nccl=1; done
  [ -n "$nccl" ] || echo "gpu-check: WARNING: libnccl.so.2 not found (NcclGpuTest will be skipped: install libnccl2 or pip install nvidia-nccl-cu13)"
  echo "gpu-check: glibc $(ldd --version 2>/dev/null | head -1 | grep -oE '[0-9.]+$') (the JNI glue needs 2.34+); LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
fi

work="$(mktemp -d)"
ROOT="$b"
# shellcheck source=jvm-opts.sh
. "$b/scripts/jvm-opts.sh"      # exactly the options scripts/longrwkv gives every command (prebuilt kernels included)
# Kernel cache in a scratch directory (the home may be read-only).
opts=("${JVM_OPTS[@]}" -Xmx48g "-Dlongrwkv.cuda.cache=$work/kernel-cache" "-Dlongrwkv.parity.device=$device")
smi="$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)"
echo "gpu-check: device $device; ${smi:-nvidia-smi not found}; JVM options: ${opts[*]}"

# 1. parity suite (JUnit console launcher, tests from the core test jar); it runs every test even when one fails
timeout 180 "$java" "${opts[@]}" -jar "$b/lib/junit-platform-console-standalone.jar" execute \
    --disable-banner --details=tree --details-theme=unicode --reports-dir="$work/reports" \
    --class-path "$b/longrwkv.jar:$b/lib/longrwkv-core-tests.jar" \
    --select-class ai.longrwkv.core.backend.cuda.CudaParityTest \
    --select-class ai.longrwkv.core.backend.cuda.CudaBf16Test \
    --select-class ai.longrwkv.core.backend.cuda.CudaChunkedWkvTest \
    --select-class ai.longrwkv.core.backend.cuda.CudaTensorCoreWkvTest \
    --select-class ai.longrwkv.core.backend.cuda.NcclGpuTest > "$work/parity.txt" 2>&1
parity_rc=$?
grep -v '^WARNING: Using incubator' "$work/parity.txt" | tail -60

# 2. a real command through the users' launcher: a tiny model's forward on the device vs the CPU
cmd_result="not run"
if timeout 30 "$b/scripts/longrwkv" init --layers 2 --embd 128 --vocab 256 --out "$work/tiny.safetensors" > "$work/init.txt" 2>&1; then
  LONGRWKV_JAVA_OPTS="-Dlongrwkv.cuda.cache=$work/kernel-cache" timeout 45 "$b/scripts/longrwkv" forward --device $device \
      --model "$work/tiny.safetensors" --tokens 1,2,3,4,5,6,7,8 --top 1 > "$work/fwd-dev.txt" 2>&1; dev_rc=$?
  timeout 30 "$b/scripts/longrwkv" forward --device cpu --model "$work/tiny.safetensors" --tokens 1,2,3,4,5,6,7,8 --top 1 \
      > "$work/fwd-cpu.txt" 2>&1; cpu_rc=$?
  loss_dev="$(grep -oE '[0-9.]+ nats' "$work/fwd-dev.txt")"
  loss_cpu="$(grep -oE '[0-9.]+ nats' "$work/fwd-cpu.txt")"
  if [ $dev_rc = 0 ] && [ $cpu_rc = 0 ]; then cmd_result="ok: mean loss $loss_dev on $device, $loss_cpu on cpu"
  else cmd_result="FAILED (exit $dev_rc): $(grep -m1 'error' "$work/fwd-dev.txt")"; fi
else
  cmd_result="init FAILED: $(tail -1 "$work/init.txt")"
fi

# 3. benchmarks, each part on its own so that one failure does not hide the others
bench() {   # name timeout args...
  local name="$1" t="$2"; shift 2
  timeout "$t" "$java" "${opts[@]}" -cp "$b/longrwkv.jar" ai.longrwkv.core.backend.cuda.CudaBench --device $device "$@" \
      > "$work/bench-$name.txt" 2> "$work/bench-$name.err"
  local rc=$?
  [ $rc = 0 ] || echo "| bench $name | FAILED (exit $rc): $(grep -m1 -E 'Exception|error' "$work/bench-$name.err") |" >> "$work/bench-$name.txt"
}
quick=(--full); [ $device = emulated ] && quick=(--quick)
bench wkv 90 wkv "${quick[@]}"   # sequential, chunked and tensor-core WKV at T=4096 and 32768 (H=64 N=64): 2 kernel modules to build
bench gemm 40 gemm "${quick[@]}"
bench train-l24 50 train-l24 "${quick[@]}"
[ $device = cuda ] && bench train-l32 100 train-l32
# worst case: 180 + 30 + 45 + 30 + 90 + 40 + 50 + 100 s = 9.4 min of timeouts; expected well under that

# 4. the table, last
count() { grep -Eo "[0-9]+ tests $1" "$work/parity.txt" | head -1 | grep -Eo '^[0-9]+' || echo "?"; }
echo
echo "| check | result |"
echo "|---|---|"
echo "| nvidia-smi | ${smi:-not found} |"
grep -h '^| device\|^| nvrtc' "$work"/bench-wkv.txt 2>/dev/null | head -2
if [ $parity_rc = 0 ]; then verdict="PASSED"; elif [ $parity_rc = 124 ]; then verdict="TIMED OUT"; else verdict="FAILED (exit $parity_rc)"; fi
echo "| parity suite | $verdict: $(count successful) passed, $(count failed) failed, $(count skipped) skipped, $(count aborted) aborted |"
while read -r _ name err; do
  status="ok"; grep -q "$name().*✘\|$name().*\[XX\]" "$work/parity.txt" && status="FAILED"
  echo "| parity $name | $status, max relative error $err |"
done < <(grep '^PARITY ' "$work/parity.txt")
echo "| forward via scripts/longrwkv | $cmd_result |"
cat "$work"/bench-*.txt 2>/dev/null | grep '^|' | grep -v '^| device\|^| nvrtc'
aborted="$(count aborted)"; skipped="$(count skipped)"
rm -rf "$work"
if [ $parity_rc = 0 ] && [ "$aborted" = 0 ] && [ "$skipped" = 0 ]; then exit 0; else exit 1; fi
