#!/usr/bin/env bash
# LongRWKV demo: what carrying the state AND its gradient across chunks buys, on a CPU, in two to three minutes
# (2 min 19 s measured on 2 cores).
#
#   scripts/demo.sh [OUT_DIR]        (default ./demo-out)
#
# 1. builds the tool (scripts/longrwkv builds the jar on first use)
# 2. initialises a tiny byte-level RWKV-5 model
# 3. writes synthetic passkey training data (the Landmark-attention prompt and keys, in bytes)
# 4. trains it twice, same data, steps and seed, every sequence cut into 32-token chunks, the pass key always more
#    than a chunk before the answer:
#      full       chunked BPTT with the exact gradient across chunk boundaries
#      truncated  the state is carried forward, but the gradient stops at every chunk boundary
#    (the two runs go side by side, one core each: for a model this small that is faster than one after the other)
# 5. evaluates the untrained, truncated and full models with `eval passkey` on new keys and prints the comparison.
#
# No downloads, no GPU. Sizes can be changed with DEMO_* variables (below); the defaults are the measured
# configuration. LONGRWKV may name another longrwkv command (the tests point it at their class path).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-./demo-out}"
longrwkv="${LONGRWKV:-$root/scripts/longrwkv}"

layers="${DEMO_LAYERS:-2}"                      # L2-C64, head size 16 (4 heads), byte vocabulary: 0.14M parameters
embd="${DEMO_EMBD:-64}"
head_size="${DEMO_HEAD_SIZE:-16}"
train_lengths="${DEMO_TRAIN_LENGTHS:-256,288,320}"   # tokens per sample; the prompt's fixed text alone is ~250 bytes
train_samples="${DEMO_TRAIN_SAMPLES:-4000}"     # per length
chunk="${DEMO_CHUNK:-32}"
steps="${DEMO_STEPS:-12000}"
lr="${DEMO_LR:-1e-3}"
eval_lengths="${DEMO_EVAL_LENGTHS:-256,320,384,512}"
eval_depths="${DEMO_EVAL_DEPTHS:-0,25,50,75,100}"
trials="${DEMO_TRIALS:-20}"
seed="${DEMO_SEED:-1}"

mkdir -p "$out"
out="$(cd "$out" && pwd)"
export LONGRWKV_NO_PROGRESS="${LONGRWKV_NO_PROGRESS:-1}"
ctx_len="${train_lengths##*,}"                  # the longest training sample
start=$SECONDS
phase_start=$SECONDS

say() { printf '\n== %s\n' "$*"; }
took() { printf '   (%ds)\n' $((SECONDS - phase_start)); phase_start=$SECONDS; }
run() { "$longrwkv" "$@"; }

say "1/5 build"
run --version
took

say "2/5 a tiny byte-level model: L$layers-C$embd, head size $head_size"
run init --layers "$layers" --embd "$embd" --head-size "$head_size" --vocab 256 --seed "$seed" --out "$out/init.safetensors"
took

say "3/5 passkey training data: $train_samples samples each of $train_lengths bytes"
run data synth passkey --tokenizer bytes --lengths "$train_lengths" --count "$train_samples" --seed "$seed" --out "$out/data/passkey"
# Train on every token, not only the answer: the model starts from nothing, and the needle says the key twice
# ("The pass key is K. Remember it. K is the pass key."), so predicting the second K teaches it to copy, and the
# end-of-text token after the answer teaches it where the answer stops. Without a mask file every token is trained.
rm -f "$out/data/passkey.mask"
took

say "4/5 training both ways side by side: $steps steps, lr $lr, samples of up to $ctx_len tokens in chunks of $chunk"
train() {   # train MODE: the same model, data, steps and seed; only --bptt differs. One core each.
  OPENBLAS_NUM_THREADS=1 LONGRWKV_JAVA_OPTS="${LONGRWKV_JAVA_OPTS:-} -Djava.util.concurrent.ForkJoinPool.common.parallelism=1 -Dlongrwkv.cpu.threads=1" \
    run finetune --model "$out/init.safetensors" --data "$out/data/passkey" --ctx-len "$ctx_len" --chunk-len "$chunk" \
      --bptt "$1" --steps "$steps" --lr "$lr" --seed "$seed" --dtype fp32 --out "$out/$1" > "$out/$1.log" 2>&1
}
last_step() {   # "step N loss X" from the last line of a run's metrics.jsonl
  local m="$out/$1/metrics.jsonl"
  [ -s "$m" ] || { echo "starting"; return; }
  tail -n 1 "$m" | sed -E 's/.*"step":([0-9]+),"loss":([0-9.]{1,6}).*/step \1 loss \2/'
}
set -m   # each run in its own process group, so that an interrupt stops the trainings too, not only this script
train full & full_pid=$!
train truncated & truncated_pid=$!
set +m
trap 'kill -TERM -- -$full_pid -$truncated_pid 2>/dev/null; exit 130' INT TERM
while kill -0 $full_pid 2>/dev/null || kill -0 $truncated_pid 2>/dev/null; do
  sleep 1
  if [ $(((SECONDS - phase_start) % 30)) -eq 0 ]; then
    printf '   %4ds  full: %-24s truncated: %s\n' $((SECONDS - phase_start)) "$(last_step full)" "$(last_step truncated)"
  fi
done
for mode in full truncated; do
  pid_var="${mode}_pid"
  if ! wait "${!pid_var}"; then
    echo "training ($mode) failed; the end of $out/$mode.log:" >&2
    tail -n 20 "$out/$mode.log" >&2
    exit 1
  fi
  grep -E '^trained' "$out/$mode.log" | sed "s/^/   $mode: /"
done
trap - INT TERM
took

say "5/5 eval passkey on new keys (seed $((seed + 1000))): lengths $eval_lengths, depths $eval_depths %, $trials trials per cell"
evaluate() {   # evaluate NAME MODEL LABEL
  echo "-- $3"
  run eval passkey --model "$2" --label "$3" --lengths "$eval_lengths" --depths "$eval_depths" --trials "$trials" \
      --seed "$((seed + 1000))" --chunk-len "$chunk" --out "$out/eval-$1"
}
evaluate untrained "$out/init.safetensors" "untrained model"
evaluate truncated "$out/truncated/rwkv-final.pth" "truncated BPTT, $steps steps"
evaluate full "$out/full/rwkv-final.pth" "full BPTT, $steps steps"
took

# The comparison, from each summary.csv (length,depth_pct,trials,accuracy,answer_loss,distance): accuracy and
# answer-token loss averaged over depths, per length.
row() {   # row MODEL COLUMN FORMAT LABEL
  awk -F, -v col="$2" -v fmt="$3" -v label="$4" 'NR > 1 {
      sum[$1] += $col; n[$1]++; if (!($1 in seen)) { seen[$1] = 1; order[++k] = $1 } }
    END { line = sprintf("%-24s", label); for (i = 1; i <= k; i++) line = line sprintf(fmt, sum[order[i]] / n[order[i]]); print line }' \
    "$out/eval-$1/summary.csv"
}
distances() {   # the distance from the key's needle to the answer, min-max over depths, in chunks
  awk -F, -v chunk="$chunk" 'NR > 1 {
      if (!($1 in lo) || $6 < lo[$1]) lo[$1] = $6; if ($6 > hi[$1]) hi[$1] = $6; if (!($1 in seen)) { seen[$1] = 1; order[++k] = $1 } }
    END { line = sprintf("%-24s", "key distance (chunks)"); for (i = 1; i <= k; i++) line = line sprintf("%9s", sprintf("%.1f-%.1f", lo[order[i]] / chunk, hi[order[i]] / chunk)); print line }' \
    "$out/eval-full/summary.csv"
}
{
  echo
  echo "passkey retrieval, L$layers-C$embd bytes model, $steps steps on samples of $train_lengths tokens in chunks of $chunk"
  printf '%-24s' "length (tokens)"
  IFS=, read -ra lengths <<< "$eval_lengths"
  for l in "${lengths[@]}"; do printf '%9s' "$l"; done
  echo
  distances
  for model in untrained truncated full; do row "$model" 4 '%9.2f' "$model accuracy"; done
  for model in untrained truncated full; do row "$model" 5 '%9.3f' "$model answer loss"; done
  echo "key distance: tokens from the end of the pass key sentence to the answer, in $chunk-token chunks (min-max over depths)"
  echo "accuracy: the first integer of 10 greedy tokens is the key ($trials keys x ${eval_depths//,/ } % depth per length)"
  echo "answer loss: nats per answer token given the prompt (teacher forced); guessing digits uniformly is 2.30"
} | tee "$out/comparison.txt"

printf '\ndone in %dm%02ds. Outputs in %s:\n' $(((SECONDS - start) / 60)) $(((SECONDS - start) % 60)) "$out"
echo "  comparison.txt                               the table above"
echo "  eval-{untrained,truncated,full}/heatmap.png  accuracy by length x depth"
echo "  eval-*/trials.jsonl, summary.csv             every trial (output, score, answer loss), every cell"
echo "  full/, truncated/                            rwkv-final.pth, metrics.jsonl, loss.png; full.log, truncated.log"
