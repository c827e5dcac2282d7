#!/usr/bin/env bash
# LongRWKV demo: what carrying the state AND its gradient across chunks buys, on a CPU, in about ten minutes.
#
#   scripts/demo.sh [OUT_DIR]        (default ./demo-out)
#
# 1. builds the tool (scripts/longrwkv builds the jar on first use)
# 2. initialises a tiny byte-level RWKV-5 model
# 3. writes synthetic passkey training data (the Landmark-attention prompt, in bytes)
# 4. trains it twice with the same data, steps and seed, each sequence cut into chunks shorter than the distance
#    between the pass key and the question:
#      full       chunked BPTT with the exact gradient across chunk boundaries
#      truncated  the state is carried forward but the gradient stops at every chunk boundary
# 5. evaluates the untrained, truncated and full models with `eval passkey` on new keys, the key always several
#    chunks before the question, and prints the comparison.
#
# No downloads, no GPU. Sizes can be changed with DEMO_* variables (below); the defaults are the measured
# configuration. LONGRWKV may name another longrwkv command (the tests point it at their class path).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-./demo-out}"
longrwkv="${LONGRWKV:-$root/scripts/longrwkv}"

layers="${DEMO_LAYERS:-2}"              # model: L2-C64, head size 32 (2 heads), byte vocabulary
embd="${DEMO_EMBD:-64}"
head_size="${DEMO_HEAD_SIZE:-32}"
train_len="${DEMO_TRAIN_LEN:-320}"      # tokens per training sample (the prompt's fixed text alone is ~260 bytes)
train_samples="${DEMO_TRAIN_SAMPLES:-4000}"
chunk="${DEMO_CHUNK:-32}"               # BPTT chunk: the key is always 2 to 5 chunks before the answer
steps="${DEMO_STEPS:-3000}"
lr="${DEMO_LR:-3e-3}"
eval_lengths="${DEMO_EVAL_LENGTHS:-320,384,512}"
eval_depths="${DEMO_EVAL_DEPTHS:-0,25,50,75,100}"
trials="${DEMO_TRIALS:-10}"
seed="${DEMO_SEED:-1}"

mkdir -p "$out"
out="$(cd "$out" && pwd)"
export LONGRWKV_NO_PROGRESS="${LONGRWKV_NO_PROGRESS:-1}"   # one line per step, not a progress bar per command
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

say "3/5 passkey training data: $train_samples samples of $train_len bytes"
run data synth passkey --tokenizer bytes --lengths "$train_len" --count "$train_samples" --seed "$seed" --out "$out/data/passkey"
# Train on every token, not only the answer: the needle says the key twice ("The pass key is K. Remember it. K is the
# pass key."), and predicting the second K teaches copying; the end-of-text token after the answer teaches where the
# answer stops. Without a mask file every token is trained.
rm -f "$out/data/passkey.mask"
took

train() {   # train MODE: the same model, data, steps and seed; only --bptt differs
  run finetune --model "$out/init.safetensors" --data "$out/data/passkey" --ctx-len "$train_len" --chunk-len "$chunk" \
      --bptt "$1" --steps "$steps" --lr "$lr" --seed "$seed" --dtype fp32 --out "$out/$1"
}
say "4/5 training, $steps steps each, chunks of $chunk tokens"
echo "-- full BPTT: the gradient flows through the state across every chunk boundary"
train full
took
echo "-- truncated BPTT: the same, but the gradient stops at each chunk boundary"
train truncated
took

say "5/5 eval passkey on new keys (seed $((seed + 1000))): lengths $eval_lengths, depths $eval_depths %, $trials trials per cell"
evaluate() {   # evaluate NAME MODEL
  run eval passkey --model "$2" --lengths "$eval_lengths" --depths "$eval_depths" --trials "$trials" --seed "$((seed + 1000))" \
      --chunk-len "$chunk" --out "$out/eval-$1"
  echo
}
evaluate untrained "$out/init.safetensors"
evaluate truncated "$out/truncated/rwkv-final.pth"
evaluate full "$out/full/rwkv-final.pth"
took

# The comparison: accuracy (mean over depths) and answer-token loss per length, from each summary.csv
# (columns length,depth_pct,trials,accuracy,answer_loss).
summary() {
  awk -F, -v name="$1" 'NR > 1 { acc[$1] += $4; loss[$1] += $5; n[$1]++; if (!($1 in seen)) { seen[$1] = 1; order[++k] = $1 } }
    END {
      line = sprintf("%-22s", name " accuracy"); for (i = 1; i <= k; i++) line = line sprintf("%9.2f", acc[order[i]] / n[order[i]]); print line
      line = sprintf("%-22s", name " answer loss"); for (i = 1; i <= k; i++) line = line sprintf("%9.3f", loss[order[i]] / n[order[i]]); print line
    }' "$out/eval-$1/summary.csv"
}
{
  echo "passkey retrieval after $steps steps on ${train_len}-byte samples in ${chunk}-token chunks (L$layers-C$embd, bytes)"
  printf '%-22s' "length (tokens)"
  IFS=, read -ra ls <<< "$eval_lengths"
  for l in "${ls[@]}"; do printf '%9s' "$l"; done
  echo
  summary untrained
  summary truncated
  summary full
  echo "accuracy: exact pass key (first integer of 10 greedy tokens); answer loss: mean nats per answer token, teacher forced"
  echo "the key sits 2 to $(( (${ls[${#ls[@]}-1]} - 205) / chunk + 1 )) chunks of $chunk tokens before the question"
} | tee "$out/comparison.txt"

printf '\ndone in %dm%02ds. Outputs in %s:\n' $(((SECONDS - start) / 60)) $(((SECONDS - start) % 60)) "$out"
echo "  comparison.txt                 the table above"
echo "  eval-{untrained,truncated,full}/heatmap.png   accuracy by length x depth"
echo "  eval-*/trials.jsonl, summary.csv              every trial, every cell"
echo "  full/, truncated/              rwkv-final.pth, metrics.jsonl, loss.png"
