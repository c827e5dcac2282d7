#!/usr/bin/env bash
# LongRWKV roleplay demo: does a character remember what the user said many chunks ago? Full BPTT against truncated
# BPTT on long synthetic roleplay chats, measured with `eval persona`, on a CPU, in two to four minutes (2 min 03 s
# measured on the 2-core development machine, nothing else running; README: how much its result varies by run).
#
#   scripts/roleplay-demo.sh [OUT_DIR]        (default ./roleplay-demo-out)
#
# 1. builds the tool (scripts/longrwkv builds the jar on first use)
# 2. initialises a tiny byte-level RWKV-5 model
# 3. writes synthetic roleplay chats in the World chat template (`data synth persona`): the character's definition,
#    an exchange in which the user states a fact (by default the user's lucky number), small talk (two fixed
#    exchanges), and a last user turn asking for the fact; the fact is always more than a chunk before the answer
# 4. trains it twice, same data, steps and seed, every chat cut into 32-token chunks:
#      full       chunked BPTT with the exact gradient across chunk boundaries
#      truncated  the state is carried forward, but the gradient stops at every chunk boundary
#    (side by side, one core each)
# 5. evaluates the untrained, truncated and full models with `eval persona` on new chats and prints the comparison
#    (accuracy: the fact as whole words in the greedy reply; answer loss: nats per answer token).
#
# No downloads, no GPU. Sizes can be changed with RP_* variables (below). LONGRWKV may name another longrwkv command.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-./roleplay-demo-out}"
longrwkv="${LONGRWKV:-$root/scripts/longrwkv}"

layers="${RP_LAYERS:-2}"                        # L2-C64, head size 16, byte vocabulary: 0.14M parameters
embd="${RP_EMBD:-64}"
head_size="${RP_HEAD_SIZE:-16}"
facts="${RP_FACTS:-number}"                     # what every chat states (one of them asked): user-name,char-name,pet,promise,number
template="${RP_TEMPLATE:-world}"
train_lengths="${RP_TRAIN_LENGTHS:-256,288,320}"  # tokens (bytes) per chat; the fixed parts take about 210
train_samples="${RP_TRAIN_SAMPLES:-4000}"       # per length
chunk="${RP_CHUNK:-32}"
steps="${RP_STEPS:-12000}"
lr="${RP_LR:-1e-3}"
eval_lengths="${RP_EVAL_LENGTHS:-256,320,384,512}"
eval_depths="${RP_EVAL_DEPTHS:-0,50,100}"
trials="${RP_TRIALS:-20}"
seed="${RP_SEED:-1}"

mkdir -p "$out"
out="$(cd "$out" && pwd)"
export LONGRWKV_NO_PROGRESS="${LONGRWKV_NO_PROGRESS:-1}"
ctx_len="${train_lengths##*,}"
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

say "3/5 synthetic roleplay chats ($template template, facts: $facts): $train_samples each of $train_lengths bytes"
# The small talk between the fact and the question: two fixed exchanges (in the spirit of the passkey test's fixed
# filler), so that a model this small spends its capacity on remembering, not on guessing random small talk.
# RP_FILLER=synthetic uses the generated small talk instead; RP_FILLER=FILE a chat or PIPPA jsonl of your own.
filler="${RP_FILLER:-$out/filler.jsonl}"
if [ "$filler" = "$out/filler.jsonl" ]; then
  cat > "$filler" <<'JSONL'
{"messages": [{"role": "user", "content": "What do you see?"}, {"role": "assistant", "content": "The grass is green. The sky is blue."}]}
{"messages": [{"role": "user", "content": "And now?"}, {"role": "assistant", "content": "The sun is yellow. Here we go."}]}
JSONL
fi
filler_opt=(--filler-chats "$filler")
[ "$filler" = synthetic ] && filler_opt=()
run data synth persona --tokenizer bytes --template "$template" --facts "$facts" "${filler_opt[@]}" --lengths "$train_lengths" \
    --count "$train_samples" --seed "$seed" --out "$out/data/persona"
# Train on every token, as scripts/demo.sh does: the model starts from nothing, and the fact's exchange says the value
# twice ("My lucky number is 4956." / "4956? I will remember that."), so predicting the second teaches it to copy.
rm -f "$out/data/persona.mask"
took

say "4/5 training both ways side by side: $steps steps, lr $lr, chats of up to $ctx_len tokens in chunks of $chunk"
train() {
  OPENBLAS_NUM_THREADS=1 LONGRWKV_JAVA_OPTS="${LONGRWKV_JAVA_OPTS:-} -Djava.util.concurrent.ForkJoinPool.common.parallelism=1 -Dlongrwkv.cpu.threads=1" \
    run finetune --model "$out/init.safetensors" --data "$out/data/persona" --ctx-len "$ctx_len" --chunk-len "$chunk" \
      --bptt "$1" --steps "$steps" --lr "$lr" --seed "$seed" --dtype fp32 --out "$out/$1" > "$out/$1.log" 2>&1
}
last_step() {
  local m="$out/$1/metrics.jsonl"
  [ -s "$m" ] || { echo "starting"; return; }
  tail -n 1 "$m" | sed -E 's/.*"step":([0-9]+),"loss":([0-9.]{1,6}).*/step \1 loss \2/'
}
set -m
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

say "5/5 eval persona on new chats (seed $((seed + 1000))): lengths $eval_lengths, fact positions $eval_depths %, $trials chats per cell"
evaluate() {   # evaluate NAME MODEL LABEL
  echo "-- $3"
  run eval persona --model "$2" --label "$3" --template "$template" --facts "$facts" "${filler_opt[@]}" --lengths "$eval_lengths" --depths "$eval_depths" \
      --trials "$trials" --seed "$((seed + 1000))" --chunk-len "$chunk" --out "$out/eval-$1"
}
evaluate untrained "$out/init.safetensors" "untrained model"
evaluate truncated "$out/truncated/rwkv-final.pth" "truncated BPTT, $steps steps"
evaluate full "$out/full/rwkv-final.pth" "full BPTT, $steps steps"
took

# The comparison, from each summary.csv (length,depth_pct,trials,accuracy,answer_loss,distance), averaged over positions.
row() {   # row MODEL COLUMN FORMAT LABEL
  awk -F, -v col="$2" -v fmt="$3" -v label="$4" 'NR > 1 {
      sum[$1] += $col; n[$1]++; if (!($1 in seen)) { seen[$1] = 1; order[++k] = $1 } }
    END { line = sprintf("%-24s", label); for (i = 1; i <= k; i++) line = line sprintf(fmt, sum[order[i]] / n[order[i]]); print line }' \
    "$out/eval-$1/summary.csv"
}
distances() {
  awk -F, -v chunk="$chunk" 'NR > 1 {
      if (!($1 in lo) || $6 < lo[$1]) lo[$1] = $6; if ($6 > hi[$1]) hi[$1] = $6; if (!($1 in seen)) { seen[$1] = 1; order[++k] = $1 } }
    END { line = sprintf("%-24s", "fact distance (chunks)"); for (i = 1; i <= k; i++) line = line sprintf("%9s", sprintf("%.1f-%.1f", lo[order[i]] / chunk, hi[order[i]] / chunk)); print line }' \
    "$out/eval-full/summary.csv"
}
{
  echo
  echo "persona memory ($template template, facts: $facts), L$layers-C$embd bytes model, $steps steps on chats of $train_lengths tokens in chunks of $chunk"
  printf '%-24s' "length (tokens)"
  IFS=, read -ra lengths <<< "$eval_lengths"
  for l in "${lengths[@]}"; do printf '%9s' "$l"; done
  echo
  distances
  for model in untrained truncated full; do row "$model" 4 '%9.2f' "$model accuracy"; done
  for model in untrained truncated full; do row "$model" 5 '%9.3f' "$model answer loss"; done
  echo "fact distance: tokens from the end of the fact's exchange to the answer, in $chunk-token chunks (min-max over positions)"
  echo "accuracy: the fact as whole words in the greedy reply, up to the end of the turn ($trials chats x ${eval_depths//,/ } % position per length)"
  echo "answer loss: nats per answer token given the conversation (teacher forced)"
} | tee "$out/comparison.txt"

printf '\ndone in %dm%02ds. Outputs in %s:\n' $(((SECONDS - start) / 60)) $(((SECONDS - start) % 60)) "$out"
echo "  comparison.txt                               the table above"
echo "  eval-{untrained,truncated,full}/heatmap.png  accuracy by length x fact position"
echo "  eval-*/trials.jsonl, summary.csv             every chat (reply, score, answer loss), every cell"
echo "  full/, truncated/                            rwkv-final.pth, metrics.jsonl, loss.png; full.log, truncated.log"
