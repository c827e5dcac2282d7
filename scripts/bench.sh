#!/usr/bin/env bash
# The benchmark set quoted in closing notes and the README: every number from one run on one machine, side by side.
# Usage: scripts/bench.sh [quick]   (quick: smaller repetitions). Output: stdout and bench-out/bench-<date>.txt
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
L="$root/scripts/longrwkv"
reps=5; [ "${1:-}" = quick ] && reps=2
mkdir -p "$root/bench-out"
out="$root/bench-out/bench-$(date +%Y%m%d-%H%M%S).txt"
export LONGRWKV_NO_PROGRESS=1
{
  echo "# machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem/{print $2}') GiB; load $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "# java: $(java -version 2>&1 | head -1)"
  echo "## matmul (issue 2)";                  "$L" bench matmul --reps 7
  echo "## WKV kernel (issue 2)";              "$L" bench wkv --reps 9
  echo "## L12-C768 V65536, 1024 tokens (issue 2)"; "$L" bench model --reps "$reps" | tail -1
  echo "## L4-C128 bytes, 1024 tokens (issue 2)";   "$L" bench model --layers 4 --embd 128 --vocab 256 --reps $((reps * 4)) | tail -1
  echo "## training step L12-C768 V65536, ctx 1024 (issue 5)"; "$L" bench train --reps "$reps" | tail -1
  echo "## training step L4-C128 bytes, ctx 1024 (issue 5)";  "$L" bench train --layers 4 --embd 128 --vocab 256 --reps $((reps * 4)) | tail -1
  echo "## full-BPTT memory, L2-C128, chunk 512 (issue 2)";    "$L" bench memory --chunk-len 512 --lengths 4096,16384,65536
  echo "## full-BPTT memory, L2-C128, chunk 1024 (issue 5)";   "$L" bench memory --chunk-len 1024 --lengths 8192,32768,131072
  vocab="$root/../shared/oracle/rwkv_vocab_v20230424.txt"
  if [ -f "$vocab" ]; then echo "## World tokenizer (issue 3)"; "$L" bench tokenizer --vocab "$vocab" --mb 50 --reps "$reps"; fi
} 2>&1 | tee "$out"
echo "written: $out"
