#!/usr/bin/env bash
# The one script to run on a GPU machine (no Java, Maven or network needed): from a bundle made by
# scripts/make-gpu-bundle.sh it runs the CUDA parity suite (every kernel and a whole model's forward + full-BPTT
# backward against the CPU backend) and the GPU benchmarks, then prints a short table last.
# Usage: gpu-check.sh [BUNDLE_DIR]   (default: the directory of this script if it is a bundle, else target/gpu-bundle)
# Budget: about 5 minutes in all (timeouts below); exit code 0 only when the parity suite passed.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ -n "${1:-}" ]; then b="$(cd "$1" && pwd)"
elif [ -x "$here/runtime/bin/java" ]; then b="$here"
else b="$(cd "$here/.." && pwd)/target/gpu-bundle"; fi
java="$b/runtime/bin/java"
[ -x "$java" ] || { echo "gpu-check: no bundle at $b (run scripts/make-gpu-bundle.sh first)" >&2; exit 2; }

work="$(mktemp -d)"
# Kernel cache in a scratch directory (the home may be read-only); prebuilt fatbins when the bundle has them.
opts=(--add-modules jdk.incubator.vector -Xss8m -Xmx48g
      -Dorg.bytedeco.javacpp.maxBytes=0 -Dorg.bytedeco.javacpp.maxPhysicalBytes=0
      "-Dlongrwkv.cuda.cache=$work/kernel-cache")
[ -d "$b/kernels" ] && opts+=("-Dlongrwkv.cuda.kernels=$b/kernels")
echo "gpu-check: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo 'nvidia-smi not found')"

# 1. parity suite (JUnit console launcher, tests from the core test jar; the GPU tests skip with a reason if no GPU)
timeout 200 "$java" "${opts[@]}" -jar "$b/lib/junit-platform-console-standalone.jar" execute \
    --disable-banner --details=tree --reports-dir="$work/reports" \
    --class-path "$b/longrwkv.jar:$b/lib/longrwkv-core-tests.jar" \
    --select-class ai.longrwkv.core.backend.cuda.BackendsTest \
    --select-class ai.longrwkv.core.backend.cuda.CudaParityTest > "$work/parity.txt" 2>&1
parity_rc=$?
grep -v '^WARNING: Using incubator' "$work/parity.txt"

# 2. benchmarks
timeout 240 "$java" "${opts[@]}" -cp "$b/longrwkv.jar" ai.longrwkv.core.backend.cuda.CudaBench wkv train \
    > "$work/bench.txt" 2> "$work/bench.err"
bench_rc=$?
[ $bench_rc = 0 ] || { echo "gpu-check: benchmark exit code $bench_rc"; tail -20 "$work/bench.err"; }

# 3. the table, last
count() { grep -Eo "[0-9]+ tests $1" "$work/parity.txt" | head -1 | grep -Eo '^[0-9]+' || echo "?"; }
echo
echo "| check | result |"
echo "|---|---|"
aborted="$(count aborted)"
if [ $parity_rc = 0 ] && [ "$aborted" != 0 ]; then verdict="NOT RUN (GPU tests skipped)"; elif [ $parity_rc = 0 ]; then verdict="PASSED"; elif [ $parity_rc = 124 ]; then verdict="TIMED OUT"; else verdict="FAILED (exit $parity_rc)"; fi
echo "| parity suite (CudaParityTest + BackendsTest) | $verdict: $(count successful) passed, $(count failed) failed, $(count skipped) skipped, $(count aborted) aborted |"
grep -q 'no GPU, parity suite skipped' "$work/parity.txt" && echo "| note | parity tests were SKIPPED: no usable GPU (see the reason above) |"
grep '^|' "$work/bench.txt" || echo "| benchmarks | none ran (exit $bench_rc) |"
rm -rf "$work"
# an aborted (skipped) GPU test means the GPU was not used: that is not a pass
if [ $parity_rc = 0 ] && [ "$aborted" = 0 ]; then exit 0; else exit 1; fi
