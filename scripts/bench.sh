#!/usr/bin/env bash
# The benchmark set quoted in closing notes and the README: every number from one run on one machine, side by side.
# Usage: scripts/bench.sh [quick]   (quick: smaller repetitions). Output: stdout and bench-out/bench-<date>.txt
#        scripts/bench.sh cpu-vs-torch [ROUNDS]   the training step against the PyTorch peer (scripts/torch-peer.py),
#            alternating, ROUNDS times (default 3), at L12-C768 V65536 and L4-C128 bytes, ctx 1024, each in fp32 and in
#            bf16 mixed precision (longrwkv --precision bf16; torch.autocast bf16); medians, ratios and the share of the
#            sgemm-bound (fp32) and bf16-GEMM-bound limits (both rates measured in each round). Installs Debian's
#            python3-torch and OpenBLAS (root, apt) when missing. Not part of CI. BENCH_PRECISIONS="fp32" runs fp32
#            only (for CPUs without AVX512-BF16, where the torch bf16 peer takes minutes a step).
#        scripts/bench.sh precision [ROUNDS]   the training step with fp32 and with bf16 weight matrices, alternating,
#            ROUNDS times (default 3): L12-C768 V65536 full finetuning (bf16: fp32 master + bf16 working copy), and once
#            L24-C2048 V65536 state tuning (bf16: the frozen matrices stored in bf16), ctx 1024; medians and ratio,
#            with each run's peak tensor memory.
#        scripts/bench.sh before-after REV [ROUNDS]   this checkout's training step against git revision REV's (built
#            once into bench-out/rev-<hash>/), alternating, ROUNDS times (default 3), at L12-C768 V65536 and L4-C128 V256,
#            ctx 1024, fp32 and bf16; medians and the ratio this/REV per shape; then one --profile of each at L12-C768
#            fp32 (where the time goes, before and after). BENCH_SHAPES="L C V; ..." replaces the shapes.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
L="$root/scripts/longrwkv"

if [ "${1:-}" = precision ]; then
  rounds="${2:-3}"
  mkdir -p "$root/bench-out"
  out="$root/bench-out/precision-$(date +%Y%m%d-%H%M%S).txt"
  export LONGRWKV_NO_PROGRESS=1
  median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
  {
    echo "# machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem/{print $2}') GiB; load $(cut -d' ' -f1-3 /proc/loadavg)"
    # the 1.6B shape once per precision (each run spends ~2 min on its orthogonal init and ~80 s per step here)
    for shape in "12 768 full 3 $rounds" "24 2048 state 1 1"; do
      set -- $shape
      : > /tmp/bp-f.$$; : > /tmp/bp-b.$$
      echo "## training step L$1-C$2 V65536, mode $3, ctx 1024, fp32 vs bf16 weight matrices, $5 rounds alternating"
      for r in $(seq 1 "$5"); do
        f=$("$L" bench train --layers "$1" --embd "$2" --mode "$3" --reps "$4" --precision fp32 | tee /dev/stderr | awk '/^median/ {print $2}')
        b=$("$L" bench train --layers "$1" --embd "$2" --mode "$3" --reps "$4" --precision bf16 | tee /dev/stderr | awk '/^median/ {print $2}')
        echo "$f" >> /tmp/bp-f.$$; echo "$b" >> /tmp/bp-b.$$
        echo "round $r: fp32 $f tok/s, bf16 $b tok/s"
      done
      fm=$(median < /tmp/bp-f.$$); bm=$(median < /tmp/bp-b.$$)
      awk -v f="$fm" -v b="$bm" 'BEGIN { printf "median of rounds: fp32 %.1f tok/s, bf16 %.1f tok/s, bf16/fp32 %.3f\n", f, b, b / f }'
      rm -f /tmp/bp-f.$$ /tmp/bp-b.$$
    done
  } 2> >(grep -v '^WARNING: Using incubator' >&2) | tee "$out"
  echo "written: $out"
  exit 0
fi

if [ "${1:-}" = before-after ]; then
  rev="${2:?usage: scripts/bench.sh before-after REV [ROUNDS]}"
  rounds="${3:-3}"
  hash=$(git -C "$root" rev-parse --short "$rev^{commit}")
  base="$root/bench-out/rev-$hash"
  if [ ! -f "$base/cli/target/longrwkv.jar" ]; then
    echo "bench.sh: building $rev ($hash) into $base ..." >&2
    rm -rf "$base"; mkdir -p "$base"
    git -C "$root" archive "$hash" | tar -x -C "$base"
    (cd "$base" && mvn -q -B -ntp package -DskipTests -pl cli -am) >&2
  fi
  out="$root/bench-out/before-after-$hash-$(date +%Y%m%d-%H%M%S).txt"
  export LONGRWKV_NO_PROGRESS=1
  median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
  {
    echo "# machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem/{print $2}') GiB; load $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "# before: $hash ($(git -C "$root" log -1 --format=%s "$hash" | cut -c1-80)); after: this checkout, $(git -C "$root" rev-parse --short HEAD)$(git -C "$root" diff --quiet HEAD -- core cli || echo ' + uncommitted changes')"
    IFS=';' read -ra shapes <<<"${BENCH_SHAPES:-12 768 65536;4 128 256}"
    for shape in "${shapes[@]}"; do
      set -- $shape
      reps=3; [ "$1" -lt 12 ] && reps=20
      for p in fp32 bf16; do
        rm -f /tmp/ba-*.$$
        echo "## training step L$1-C$2 V$3, ctx 1024, $p, $rounds rounds alternating (median of $reps steps each)"
        for r in $(seq 1 "$rounds"); do
          b=$("$base/scripts/longrwkv" bench train --layers "$1" --embd "$2" --vocab "$3" --reps "$reps" --precision $p | tee /dev/stderr | awk '/^median/ {print $2}')
          a=$("$L" bench train --layers "$1" --embd "$2" --vocab "$3" --reps "$reps" --precision $p | tee /dev/stderr | awk '/^median/ {print $2}')
          echo "$b" >> /tmp/ba-b.$$; echo "$a" >> /tmp/ba-a.$$
          echo "round $r: before $b tok/s, after $a tok/s"
        done
        bm=$(median < /tmp/ba-b.$$); am=$(median < /tmp/ba-a.$$)
        awk -v b="$bm" -v a="$am" 'BEGIN { printf "median of rounds: before %.1f tok/s, after %.1f tok/s, after/before %.3f\n", b, a, a / b }'
      done
    done
    rm -f /tmp/ba-*.$$
    s=(${shapes[0]})
    for side in before after; do
      launcher="$L"; [ $side = before ] && launcher="$base/scripts/longrwkv"
      echo "## profile, $side: L${s[0]}-C${s[1]} V${s[2]} fp32 (bench train --profile --reps 3)"
      "$launcher" bench train --layers "${s[0]}" --embd "${s[1]}" --vocab "${s[2]}" --reps 3 --profile | sed -n '/^median/,$p'
    done
  } 2> >(grep -v '^WARNING: Using incubator' >&2) | tee "$out"
  echo "written: $out"
  exit 0
fi

if [ "${1:-}" = cpu-vs-torch ]; then
  rounds="${2:-3}"
  py=/usr/bin/python3
  need=()
  "$py" -c "import torch" >/dev/null 2>&1 || need+=(python3-torch)
  # without it torch runs on Debian's reference BLAS (libblas3), ~20x slower: not a fair peer
  [ -e /usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0 ] || need+=(libopenblas0-pthread)
  if [ ${#need[@]} -gt 0 ]; then
    echo "bench.sh: installing ${need[*]} (Debian) for the PyTorch peer..." >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
  fi
  # Debian's OpenBLAS 0.3.21 misdetects recent CPUs (it falls back to SSE3 "Prescott" kernels): name the family
  # (for the peer only: the project's OpenBLAS detects the CPU itself)
  torch_core="${TORCH_OPENBLAS_CORETYPE:-}"
  if [ -z "$torch_core" ]; then
    if grep -qw avx512f /proc/cpuinfo; then torch_core=SkylakeX
    elif grep -qw avx2 /proc/cpuinfo; then torch_core=Haswell; fi
  fi
  unset OPENBLAS_CORETYPE
  # BENCH_PRECISIONS=fp32 leaves out bf16: where the CPU has no AVX512-BF16 (AMD Zen 3, AVX2 only) torch 1.13's
  # autocast bf16 runs its products outside OpenBLAS, ~3 tok/s at L12-C768 (350 s a step), an hour per round
  precisions="${BENCH_PRECISIONS:-fp32 bf16}"
  for p in $precisions; do
    case "$p" in fp32|bf16) ;; *) echo "bench.sh: BENCH_PRECISIONS: expected fp32 and/or bf16, found '$p'" >&2; exit 2 ;; esac
  done
  mkdir -p "$root/bench-out"
  out="$root/bench-out/cpu-vs-torch-$(date +%Y%m%d-%H%M%S).txt"
  export LONGRWKV_NO_PROGRESS=1
  median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
  # matrix-product FLOPs per trained token: 6 x (L (6 C^2 + 2 C F) + V C), F = 3.5 C rounded down to a multiple of 32
  flops() { awk -v l="$1" -v c="$2" -v v="$3" 'BEGIN {f = int(c * 3.5 / 32) * 32; printf "%.0f", 6 * (l * (6 * c * c + 2 * c * f) + v * c)}'; }
  {
    echo "# machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem/{print $2}') GiB; load $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "# longrwkv: $(OPENBLAS_VERBOSE=2 "$L" bench matmul --reps 1 2>&1 | grep -m1 '^Core:' | sed 's/Core: /OpenBLAS 0.3.31 (bytedeco) kernels /'), OPENBLAS_THREAD_TIMEOUT=${OPENBLAS_THREAD_TIMEOUT:-4}"
    echo "# torch: $("$py" -c 'import torch; print(torch.__version__)'), Debian OpenBLAS $(dpkg-query -W -f='${Version}' libopenblas0-pthread 2>/dev/null), OPENBLAS_CORETYPE=${torch_core:-unset} (TORCH_OPENBLAS_CORETYPE overrides), $(nproc) threads"
    # BENCH_SHAPES="L C V; ..." replaces the two shapes
    IFS=';' read -ra shapes <<<"${BENCH_SHAPES:-12 768 65536;4 128 256}"
    for shape in "${shapes[@]}"; do
      set -- $shape
      reps=3; [ "$1" -lt 12 ] && reps=8
      rm -f /tmp/cvt-*.$$
      echo "## training step L$1-C$2 V$3, ctx 1024 (forward + backward + L2Wrap + clipping + AdamW), $rounds rounds alternating, precisions: $precisions (bf16: fp32 master, bf16 products)"
      for r in $(seq 1 "$rounds"); do
        mm=$("$L" bench matmul --reps 3 | tee /dev/stderr)
        sg=$(awk '/^OpenBLAS sgemm/ {print $(NF-1)}' <<<"$mm"); bg=$(awk '/^backend bf16 x bf16/ {print $(NF-3)}' <<<"$mm")
        echo "$sg" >> /tmp/cvt-s.$$; echo "$bg" >> /tmp/cvt-g.$$
        line="round $r: sgemm 2048^3 $sg GFLOP/s, bf16 2048^3 $bg GFLOP/s;"
        for p in $precisions; do
          j=$("$L" bench train --layers "$1" --embd "$2" --vocab "$3" --reps "$reps" --precision $p | tee /dev/stderr | awk '/^median/ {print $2}')
          t=$(OPENBLAS_CORETYPE="$torch_core" "$py" "$root/scripts/torch-peer.py" --layers "$1" --embd "$2" --vocab "$3" --reps "$reps" --precision $p | tee /dev/stderr | awk '/^median/ {print $2}')
          echo "$j" >> /tmp/cvt-j$p.$$; echo "$t" >> /tmp/cvt-t$p.$$
          line="$line $p: longrwkv $j tok/s, torch $t tok/s;"
        done
        echo "$line"
      done
      sm=$(median < /tmp/cvt-s.$$); gm=$(median < /tmp/cvt-g.$$)
      jf=$(median 2>/dev/null < /tmp/cvt-jfp32.$$ || true); tf=$(median 2>/dev/null < /tmp/cvt-tfp32.$$ || true)
      jb=$(median 2>/dev/null < /tmp/cvt-jbf16.$$ || true); tb=$(median 2>/dev/null < /tmp/cvt-tbf16.$$ || true)
      awk -v jf="$jf" -v tf="$tf" -v jb="$jb" -v tb="$tb" -v s="$sm" -v g="$gm" -v f="$(flops "$1" "$2" "$3")" 'BEGIN {
        lim = s * 1e9 / f; lim16 = g * 1e9 / f; tbest = (tf > tb) ? tf : tb
        if (jf != "") printf "median of rounds, fp32: longrwkv %.1f tok/s, torch %.1f tok/s, ratio %.2fx; sgemm-bound limit %.0f tok/s (%.3f GFLOP/token at %.0f GFLOP/s): longrwkv at %.0f%%, torch at %.0f%%\n", jf, tf, jf / tf, lim, f / 1e9, s, 100 * jf / lim, 100 * tf / lim
        if (jb != "") printf "median of rounds, bf16: longrwkv %.1f tok/s, torch %.1f tok/s, ratio %.2fx; bf16-GEMM-bound limit %.0f tok/s (at %.0f GFLOP/s): longrwkv at %.0f%%, torch at %.0f%%\n", jb, tb, jb / tb, lim16, g, 100 * jb / lim16, 100 * tb / lim16
        if (jf != "" && jb != "") printf "longrwkv bf16 against the faster torch (%s): %.2fx; against torch fp32: %.2fx\n", (tf > tb) ? "fp32" : "bf16", jb / tbest, jb / tf }'
      rm -f /tmp/cvt-*.$$
    done
  } 2> >(grep -v '^WARNING: Using incubator' >&2) | tee "$out"
  echo "written: $out"
  exit 0
fi
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
