#!/usr/bin/env bash
# LongRWKV long-context demo: a tiny byte-level RWKV-5 trained from scratch on CPU on passkey prompts of at most 2048
# tokens, then evaluated with `eval passkey` on new keys at 256 .. 131072 tokens, at every depth, next to the same
# model trained with truncated BPTT (same data, steps and seed) and the untrained model. Then the same models on a
# needle in real English text (licences Debian installs), and a position-loss curve of small language models trained
# on that text with full and truncated BPTT.
#
#   scripts/long-context-demo.sh [OUT_DIR]        (default ./long-context-demo-out)
#
# Stages (timings of the committed configuration are in README.md, "Long context in miniature"):
# 1. init an L2-C64 byte model whose first 4 key channels per head have time_decay -16 (w = 1 - 1.1e-7 per token:
#    98.6% of a value survives 128k tokens); x052's own init forgets everything within a few hundred tokens
# 2. passkey data: prompts of 256..2048 tokens (the Landmark-attention wording and filler, the key at a random depth),
#    and prompts of 1k..16k tokens that are trained as consecutive 2048-token pieces with the state carried
# 3. train full and truncated BPTT side by side (chunks of 32 tokens, one core each; the same data, steps and seed):
#      a. a length curriculum: prompts of <= 512 tokens, then <= 2048 (--ctx-len 512:N,2048)
#      b. a document stream: the long prompts cut into 2048-token pieces, each piece starting from the state the
#         piece before left (--carry-state stop; the gradient stops there, so no backward pass is longer than 2048)
#      c. the same stream over prompts of 2k..128k tokens (log-spread), only the answer trained: the pieces before the
#         last one of a prompt only advance the state (a forward pass), the last one is trained from that state
#      d. once more over prompts of 4k..32k tokens (the lengths where the model is learning; cheaper per update)
#      e. once more over prompts of 256..32k tokens: c and d alone cost accuracy at <= 2k (their prompts are >= 2k),
#         and short prompts alone (no state passing) bring 256..2k back to 1.00 but lose 8k-16k; the mix keeps both
#      f. once more over prompts of 1k..64k tokens, then (g) of 256..128k at a lower learning rate (2e-5: at 1e-4 a
#         fresh optimizer first lost accuracy at 8k-16k before it gained); each moved the range out by about a doubling
#      h. once more over prompts of 64k, 96k and 128k tokens only (lr 2e-5): the one stage that moved 128k (README)
#      i. (off by default: DEMO_SETTLE_RUNS=3, about 37 more minutes) more runs over 64k..128k prompts at lr 1e-5 ->
#         1e-6 with a 1000-piece warmup, each on new keys; a fresh optimizer at 2e-5 throws the 128k readout off,
#         1e-5 does not (README, "The next day": with 3 runs 128k went from 0.42 to 0.90, worst depth 0.75)
#    So every backward pass covers at most 2048 tokens ("trained on sequences of <= 2k tokens"); what the stream
#    stages add is the state a 2k-token window starts from in a longer document (Buitrago and Gu's state passing)
#    Between a and b, a check: the full model must answer 20 new keys at 2048 tokens; else both models train
#    DEMO_CHECK_STEPS more steps of (a)'s data, up to DEMO_CHECK_ROUNDS times (README: why and what it bought)
#    DEMO_PREFIX_GRAD=stationary adds `finetune --prefix-grad stationary` to stages c-g (README: measured per seed)
# 4. eval passkey, lengths 256..128k x depths 0..100%, untrained / truncated / full: table and heatmaps
# 5. needle in real text: eval passkey --haystack (GPL-3, Apache-2.0, MPL-2.0, GFDL-1.3 from /usr/share/common-licenses)
# 6. position loss on held-out licences of byte LMs trained (full vs truncated) on the other licences
#
# No downloads, no GPU. DEMO_* variables change the sizes; DEMO_REUSE=1 keeps trained models
# already in OUT_DIR, each of full and truncated on its own (to redo the evaluations, or to run stages added since);
# LONGRWKV may name another longrwkv command.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-./long-context-demo-out}"
longrwkv="${LONGRWKV:-$root/scripts/longrwkv}"

memory_channels="${DEMO_MEMORY_CHANNELS:-4}"     # per head, of 16
memory_decay="${DEMO_MEMORY_DECAY:--16}"
chunk="${DEMO_CHUNK:-32}"
seed="${DEMO_SEED:-1}"
curriculum_steps="${DEMO_CURRICULUM_STEPS:-16000}"   # stage 3a: the first DEMO_SHORT_STEPS on <= 512 tokens
short_steps="${DEMO_SHORT_STEPS:-12000}"
stream_steps="${DEMO_STREAM_STEPS:-1500}"            # stage 3b (0 = skip)
lr="${DEMO_LR:-1e-3}"
stream_lr="${DEMO_STREAM_LR:-5e-4}"
long_count="${DEMO_LONG_COUNT:-60}"                  # stage 3c: prompts per length 2k,4k,..,128k (0 = skip)
long_lr="${DEMO_LONG_LR:-1e-4}"
frontier_count="${DEMO_FRONTIER_COUNT:-250}"         # stage 3d: prompts per length 4k,8k,16k,32k (0 = skip)
frontier_lr="${DEMO_FRONTIER_LR:-1e-4}"
mix_count="${DEMO_MIX_COUNT:-150}"                   # stage 3e: prompts per length 256,512,..,32k (0 = skip)
mix_lr="${DEMO_MIX_LR:-1e-4}"
to64k_count="${DEMO_TO64K_COUNT:-300}"             # stage 3f: prompts per length 1k,2k,..,64k (0 = skip)
to64k_lr="${DEMO_TO64K_LR:-1e-4}"
to128k_count="${DEMO_TO128K_COUNT:-300}"           # stage 3g: prompts per length 256,512,..,128k (0 = skip)
to128k_lr="${DEMO_TO128K_LR:-2e-5}"
far_count="${DEMO_FAR_COUNT:-200}"                 # stage 3h: prompts per length 64k,96k,128k (0 = skip)
far_lr="${DEMO_FAR_LR:-2e-5}"
far_lengths=65536,98304,131072                      # stages 3h and 3i: 32, 48 and 64 pieces of 2048, 144 a length
settle_runs="${DEMO_SETTLE_RUNS:-0}"             # stage 3i: runs over 64k,96k,128k at lr 1e-5 -> 1e-6 after 3h (0 = skip)
settle_count="${DEMO_SETTLE_COUNT:-400}"         #   prompts per length in each run
settle_lr="${DEMO_SETTLE_LR:-1e-5}"
check_rounds="${DEMO_CHECK_ROUNDS:-4}"               # stage 3a check: at most this many extensions (0 = report only)
check_steps="${DEMO_CHECK_STEPS:-2000}"              # steps per extension
check_lr="${DEMO_CHECK_LR:-3e-4}"
check_lr_final="${DEMO_CHECK_LR_FINAL:-1e-4}"
prefix_grad="${DEMO_PREFIX_GRAD:-none}"              # stages 3c-3g: finetune --prefix-grad none|stationary
eval_lengths="${DEMO_EVAL_LENGTHS:-256,512,1k,2k,4k,8k,16k,32k,64k,128k}"
eval_depths="${DEMO_EVAL_DEPTHS:-0,25,50,75,100}"
trials="${DEMO_TRIALS:-8}"
hay_lengths="${DEMO_HAY_LENGTHS:-512,1k,2k,4k,8k,32k,128k}"
hay_trials="${DEMO_HAY_TRIALS:-4}"
lm_steps="${DEMO_LM_STEPS:-1000}"
lm_ctx="${DEMO_LM_CTX:-1024}"
pl_ctx="${DEMO_PL_CTX:-8192}"
licenses="${DEMO_LICENSES:-/usr/share/common-licenses}"

mkdir -p "$out"
out="$(cd "$out" && pwd)"
export LONGRWKV_NO_PROGRESS="${LONGRWKV_NO_PROGRESS:-1}"
start=$SECONDS
phase_start=$SECONDS

say() { printf '\n== %s\n' "$*"; }
took() { printf '   (%ds)\n' $((SECONDS - phase_start)); phase_start=$SECONDS; }
run() { "$longrwkv" "$@"; }
one_core() {   # a training run on one core (two go side by side)
  OPENBLAS_NUM_THREADS=1 LONGRWKV_JAVA_OPTS="${LONGRWKV_JAVA_OPTS:-} -Djava.util.concurrent.ForkJoinPool.common.parallelism=1 -Dlongrwkv.cpu.threads=1" run "$@"
}
side_by_side() {   # side_by_side NAME CMD...: runs CMD with MODE=full and MODE=truncated at once, logs in NAME-MODE.log
  local name="$1"; shift
  local pids=() modes=() mode
  for mode in full truncated; do
    if [ -n "${DEMO_REUSE:-}" ] && [ -f "$out/$name-$mode/rwkv-final.pth" ]; then
      echo "   DEMO_REUSE: keeping $out/$name-$mode/rwkv-final.pth"
    else
      modes+=("$mode")
    fi
  done
  [ ${#modes[@]} -eq 0 ] && return
  set -m
  for mode in "${modes[@]}"; do
    # PREFIX_GRAD: the full-BPTT run's --prefix-grad (an estimate of gradient beyond the piece; truncated has none)
    ( MODE=$mode; PREFIX_GRAD=none; [ "$mode" = full ] && PREFIX_GRAD="$prefix_grad"
      eval "one_core $*" > "$out/$name-$mode.log" 2>&1 ) & pids+=($!)
  done
  set +m
  trap 'for p in "${pids[@]}"; do kill -TERM -- -$p 2>/dev/null; done; exit 130' INT TERM
  local i=0
  for mode in "${modes[@]}"; do
    if ! wait "${pids[$i]}"; then
      echo "$name ($mode) failed; the end of $out/$name-$mode.log:" >&2
      tail -n 20 "$out/$name-$mode.log" >&2
      exit 1
    fi
    grep -E '^trained' "$out/$name-$mode.log" | sed "s/^/   $name $mode: /"
    i=$((i + 1))
  done
  trap - INT TERM
}

say "1/6 build; a tiny byte-level model with $memory_channels long-memory channels per head (time_decay $memory_decay)"
run --version
run init --layers 2 --embd 64 --head-size 16 --vocab 256 --seed "$seed" --memory-channels "$memory_channels" \
    --memory-decay "$memory_decay" --out "$out/init.safetensors"
took

say "2/6 passkey data: prompts of 256..2048 tokens, and of 1k..16k tokens for the document stream"
run data synth passkey --tokenizer bytes --lengths 256,320,384,512,768,1024,1536,2048 --count 2000 --seed "$seed" --out "$out/data/passkey"
run data synth passkey --tokenizer bytes --lengths 1024,2048,4096,8192,16384 --count 150 --seed "$((seed + 1))" --out "$out/data/passkey-long"
# train on every token, not only the answer (as scripts/demo.sh): without a mask file every token is trained
rm -f "$out/data/passkey.mask" "$out/data/passkey-long.mask"
# stages 3c/3d train only the answer and the end token after it (--train-end; without it the model forgets where the
# key ends and writes more digits): the pieces without the answer then cost a forward pass only
[ "$long_count" -gt 0 ] && run data synth passkey --tokenizer bytes --lengths 2048,4096,8192,16384,32768,65536,131072 \
    --count "$long_count" --seed "$((seed + 2))" --train-end --out "$out/data/passkey-128k"
[ "$frontier_count" -gt 0 ] && run data synth passkey --tokenizer bytes --lengths 4096,8192,16384,32768 \
    --count "$frontier_count" --seed "$((seed + 3))" --train-end --out "$out/data/passkey-32k"
[ "$mix_count" -gt 0 ] && run data synth passkey --tokenizer bytes --lengths 256,512,1024,2048,4096,8192,16384,32768 \
    --count "$mix_count" --seed "$((seed + 10))" --train-end --out "$out/data/passkey-mix"
[ "$to64k_count" -gt 0 ] && run data synth passkey --tokenizer bytes --lengths 1024,2048,4096,8192,16384,32768,65536 \
    --count "$to64k_count" --seed "$((seed + 20))" --train-end --out "$out/data/passkey-to64k"
[ "$to128k_count" -gt 0 ] && run data synth passkey --tokenizer bytes --lengths 256,512,1024,2048,4096,8192,16384,32768,65536,131072 \
    --count "$to128k_count" --seed "$((seed + 30))" --train-end --out "$out/data/passkey-to128k"
[ "$far_count" -gt 0 ] && run data synth passkey --tokenizer bytes --lengths "$far_lengths" \
    --count "$far_count" --seed "$((seed + 40))" --train-end --out "$out/data/passkey-far"
for i in $(seq 1 "$settle_runs"); do
  run data synth passkey --tokenizer bytes --lengths "$far_lengths" \
      --count "$settle_count" --seed "$((seed + 50 + i))" --train-end --out "$out/data/passkey-settle$i"
done
took

say "3a/6 training full and truncated BPTT side by side: $curriculum_steps steps, prompts <= 512 tokens for $short_steps, then <= 2048"
side_by_side curriculum finetune --model "$out/init.safetensors" --data "$out/data/passkey" --ctx-len "512:$short_steps,2048" \
    --chunk-len "$chunk" --bptt '$MODE' --steps "$curriculum_steps" --lr "$lr" --seed "$seed" --dtype fp32 --out "$out/curriculum-\$MODE"
took
prev=curriculum
# The check: retrieval appears late in stage 3a, at a step that changes with the seed and with the last bits of the
# arithmetic (another CPU's BLAS kernels), and a model that enters the long stages retrieving badly at 2k never
# catches up. So the full model has to answer every one of 20 new keys at 2048 tokens (4 per depth 0..100 %); until
# it does, both models train $check_steps more steps on the same data (up to $check_rounds rounds; the truncated
# model gets the same steps whatever it scores, so the two stay trained alike).
check_round=0
while :; do
  run eval passkey --model "$out/$prev-full/rwkv-final.pth" --label "stage 3a check, round $check_round" --lengths 2048 \
      --depths 0,25,50,75,100 --trials 4 --seed "$((seed + 500 + check_round))" --chunk-len 1024 --out "$out/check-$check_round" > "$out/check-$check_round.log"
  worst=$(awk -F, 'NR > 1 && (lo == "" || $4 + 0 < lo) { lo = $4 + 0 } END { print lo }' "$out/check-$check_round/summary.csv")
  echo "   check round $check_round: full BPTT at 2048 tokens, worst depth $worst (needs 1.00)"
  if awk -v w="$worst" 'BEGIN { exit !(w >= 0.999) }'; then break; fi
  if [ "$check_round" -ge "$check_rounds" ]; then echo "   still below after $check_rounds rounds: going on (expect a weaker long-context result)"; break; fi
  check_round=$((check_round + 1))
  say "3a+/6 round $check_round: $check_steps more steps on prompts <= 2048 for both models (lr $check_lr -> $check_lr_final)"
  side_by_side "check$check_round" finetune --model "$out/$prev-\$MODE/rwkv-final.pth" --data "$out/data/passkey" --ctx-len 2048 \
      --chunk-len "$chunk" --bptt '$MODE' --steps "$check_steps" --lr "$check_lr" --lr-final "$check_lr_final" --warmup 100 \
      --seed "$((seed + 100 + check_round))" --dtype fp32 --out "$out/check$check_round-\$MODE"
  prev="check$check_round"
  took
done
extra_steps=$((check_round * check_steps))
final_full="$out/$prev-full/rwkv-final.pth"
final_truncated="$out/$prev-truncated/rwkv-final.pth"
if [ "$stream_steps" -gt 0 ]; then
  say "3b/6 document stream: $stream_steps pieces of <= 2048 tokens of prompts up to 16k, the state carried from piece to piece"
  side_by_side stream finetune --model "$out/$prev-\$MODE/rwkv-final.pth" --data "$out/data/passkey-long" --ctx-len 2048 \
      --carry-state stop --chunk-len "$chunk" --bptt '$MODE' --steps "$stream_steps" --lr "$stream_lr" --seed "$seed" --dtype fp32 \
      --out "$out/stream-\$MODE"
  final_full="$out/stream-full/rwkv-final.pth"
  final_truncated="$out/stream-truncated/rwkv-final.pth"
  took
fi
[ "$stream_steps" -gt 0 ] && prev=stream
answer_stream() {   # answer_stream NAME DATA PIECES LR WARMUP SEED: one epoch of DATA in 2048-token pieces from stage $prev's models
  local name="$1" data="$2" pieces="$3" lr_="$4" warmup="$5" seed_="$6"
  side_by_side "$name" finetune --model "$out/$prev-\$MODE/rwkv-final.pth" --data "$data" --ctx-len 2048 --carry-state stop \
      --chunk-len "$chunk" --bptt '$MODE' --steps "$pieces" --lr "$lr_" --warmup "$warmup" --seed "$seed_" --dtype fp32 --prefix-grad '$PREFIX_GRAD' --out "$out/$name-\$MODE"
  prev="$name"
  final_full="$out/$name-full/rwkv-final.pth"
  final_truncated="$out/$name-truncated/rwkv-final.pth"
}
if [ "$long_count" -gt 0 ]; then   # pieces per prompt: 1, 2, 4, .., 64 (the last one holds the answer)
  say "3c/6 document stream of prompts of 2k..128k tokens ($long_count per length), only the answer trained: $((long_count * 127)) pieces"
  answer_stream long "$out/data/passkey-128k" "$((long_count * 127))" "$long_lr" 300 "$seed"
  took
fi
if [ "$frontier_count" -gt 0 ]; then   # pieces per prompt: 2, 4, 8, 16
  say "3d/6 document stream of prompts of 4k..32k tokens ($frontier_count per length), only the answer trained: $((frontier_count * 30)) pieces"
  answer_stream frontier "$out/data/passkey-32k" "$((frontier_count * 30))" "$frontier_lr" 100 "$seed"
  took
fi
if [ "$mix_count" -gt 0 ]; then   # pieces per prompt: 1, 1, 1, 1, 2, 4, 8, 16
  say "3e/6 document stream of prompts of 256..32k tokens ($mix_count per length), only the answer trained: $((mix_count * 34)) pieces"
  answer_stream mix "$out/data/passkey-mix" "$((mix_count * 34))" "$mix_lr" 100 "$((seed + 3))"
  took
fi
if [ "$to64k_count" -gt 0 ]; then   # pieces per prompt: 1, 1, 2, 4, 8, 16, 32
  say "3f/6 document stream of prompts of 1k..64k tokens ($to64k_count per length), only the answer trained: $((to64k_count * 64)) pieces"
  answer_stream to64k "$out/data/passkey-to64k" "$((to64k_count * 64))" "$to64k_lr" 100 "$((seed + 20))"
  took
fi
if [ "$to128k_count" -gt 0 ]; then   # pieces per prompt: 1, 1, 1, 1, 2, 4, 8, 16, 32, 64
  say "3g/6 document stream of prompts of 256..128k tokens ($to128k_count per length), only the answer trained, lr $to128k_lr: $((to128k_count * 130)) pieces"
  answer_stream to128k "$out/data/passkey-to128k" "$((to128k_count * 130))" "$to128k_lr" 100 "$((seed + 30))"
  took
fi
if [ "$far_count" -gt 0 ]; then   # pieces per prompt: 32, 48, 64
  say "3h/6 document stream of prompts of 64k..128k tokens ($far_count per length), only the answer trained, lr $far_lr: $((far_count * 144)) pieces"
  answer_stream far "$out/data/passkey-far" "$((far_count * 144))" "$far_lr" 100 "$((seed + 40))"
  took
fi
for i in $(seq 1 "$settle_runs"); do   # pieces per prompt: 32, 48, 64
  say "3i/6 run $i of $settle_runs: prompts of 64k..128k tokens ($settle_count per length, new keys), lr $settle_lr -> 1/10 of it, warmup 1000: $((settle_count * 144)) pieces"
  answer_stream "settle$i" "$out/data/passkey-settle$i" "$((settle_count * 144))" "$settle_lr" 1000 "$((seed + 50 + i))"
  took
done

say "4/6 eval passkey on new keys (seed $((seed + 1000))): lengths $eval_lengths, depths $eval_depths %, $trials trials per cell"
evaluate() {   # evaluate NAME MODEL LABEL [extra eval options]
  local name="$1" model="$2" label="$3"; shift 3
  echo "-- $label"
  if [ -n "${DEMO_REUSE:-}" ] && [ -f "$out/eval-$name/summary.csv" ]; then echo "   DEMO_REUSE: keeping $out/eval-$name"; return; fi
  run eval passkey --model "$model" --label "$label" --lengths "$eval_lengths" --depths "$eval_depths" --trials "$trials" \
      --seed "$((seed + 1000))" --chunk-len 1024 --out "$out/eval-$name" "$@"
}
evaluate untrained "$out/init.safetensors" "untrained model"
evaluate truncated "$final_truncated" "truncated BPTT"
evaluate full "$final_full" "full BPTT"
run inspect --decay "$final_full" | sed -n '/^time_decay/,$p' > "$out/decay-full.txt"
# what the key leaves in each layer's state after 1k..128k tokens of filler, as a share of the state
for m in full truncated; do
  model="$final_full"; [ $m = truncated ] && model="$final_truncated"
  run eval state-growth --model "$model" --label "$m BPTT" --per-head --out "$out/state-growth-$m" > "$out/state-growth-$m.txt"
done
took

say "5/6 needle in real text: the same prompt, filler from $licenses/{GPL-3,Apache-2.0,MPL-2.0,GFDL-1.3}"
cat "$licenses/GPL-3" "$licenses/Apache-2.0" "$licenses/MPL-2.0" "$licenses/GFDL-1.3" > "$out/data/haystack-licenses.txt"
for m in full truncated; do
  model="$final_full"; [ $m = truncated ] && model="$final_truncated"
  echo "-- $m BPTT, licence haystack"
  if [ -n "${DEMO_REUSE:-}" ] && [ -f "$out/eval-haystack-$m/summary.csv" ]; then echo "   DEMO_REUSE: keeping $out/eval-haystack-$m"; continue; fi
  run eval passkey --model "$model" --label "$m BPTT, licence haystack" --haystack "$out/data/haystack-licenses.txt" \
      --lengths "$hay_lengths" --depths "$eval_depths" --trials "$hay_trials" --seed "$((seed + 2000))" --chunk-len 1024 --out "$out/eval-haystack-$m"
done
took

say "6/6 position loss on real text: byte LMs trained on 8 licences ($lm_steps steps of $lm_ctx tokens), held-out 4"
mkdir -p "$out/licenses"
for f in GPL-2 LGPL-2.1 GFDL-1.2 MPL-1.1 Artistic LGPL-3 BSD CC0-1.0 GPL-3 GFDL-1.3 MPL-2.0 Apache-2.0; do
  cp "$licenses/$f" "$out/licenses/$f.txt"
done
train_inputs=() test_inputs=()
for f in GPL-2 LGPL-2.1 GFDL-1.2 MPL-1.1 Artistic LGPL-3 BSD CC0-1.0; do train_inputs+=(--input "$out/licenses/$f.txt"); done
for f in GPL-3 GFDL-1.3 MPL-2.0 Apache-2.0; do test_inputs+=(--input "$out/licenses/$f.txt"); done
run data build --format text --tokenizer bytes "${train_inputs[@]}" --out "$out/data/licenses-train"
run data build --format text --tokenizer bytes "${test_inputs[@]}" --out "$out/data/licenses-test"
run init --layers 2 --embd 64 --head-size 16 --vocab 256 --seed "$seed" --memory-channels "$memory_channels" \
    --memory-decay "$memory_decay" --out "$out/lm-init.safetensors"
side_by_side lm finetune --model "$out/lm-init.safetensors" --data "$out/data/licenses-train" --ctx-len "$lm_ctx" --chunk-len "$chunk" \
    --bptt '$MODE' --steps "$lm_steps" --lr "$lr" --seed "$seed" --dtype fp32 --out "$out/lm-\$MODE"
[ -n "${DEMO_REUSE:-}" ] && [ -f "$out/position-loss/position-loss.csv" ] && echo "   DEMO_REUSE: keeping $out/position-loss" || \
run eval position-loss --data "$out/data/licenses-test" --ctx-len "$pl_ctx" --docs 4 --chunk-len 1024 --out "$out/position-loss" \
    --model "$out/lm-init.safetensors" --label untrained --model "$out/lm-truncated/rwkv-final.pth" --label "truncated BPTT" \
    --model "$out/lm-full/rwkv-final.pth" --label "full BPTT"
took

# The comparison, from each summary.csv (length,depth_pct,trials,accuracy,answer_loss,distance): per length the
# accuracy at the worst depth and averaged over depths.
row() {   # row SUMMARY COLUMN FORMAT LABEL AGG(min|mean)
  awk -F, -v col="$2" -v fmt="$3" -v label="$4" -v agg="$5" 'NR > 1 {
      v = $col + 0; sum[$1] += v; n[$1]++
      if (!($1 in lo) || v < lo[$1]) lo[$1] = v
      if (!($1 in seen)) { seen[$1] = 1; order[++k] = $1 } }
    END { line = sprintf("%-30s", label); for (i = 1; i <= k; i++) { x = agg == "min" ? lo[order[i]] : sum[order[i]] / n[order[i]]; line = line sprintf(fmt, x) } print line }' "$1"
}
header() {   # header SUMMARY: the lengths, as 256 .. 128k
  awk -F, 'NR > 1 && !($1 in seen) { seen[$1] = 1; order[++k] = $1 }
    END { line = sprintf("%-30s", "length (tokens)"); for (i = 1; i <= k; i++) { l = order[i]; s = l >= 1024 && l % 1024 == 0 ? (l / 1024) "k" : l; line = line sprintf("%7s", s) } print line }' "$1"
}
{
  echo
  echo "passkey retrieval (eval passkey, $trials new keys x depths $eval_depths % per length), L2-C64 bytes model"
  echo "trained on sequences of <= 2048 tokens (every backward pass) in chunks of $chunk: $curriculum_steps curriculum steps on prompts <= 2048$([ "$extra_steps" -gt 0 ] && echo " + $extra_steps (the 2k check)"),"
  echo "then 2048-token pieces of longer prompts with the state carried: $stream_steps pieces (<= 16k, every token trained),"
  echo "$((long_count * 127)) pieces ($((long_count * 7)) prompts of 2k..128k), $((frontier_count * 30)) ($((frontier_count * 4)) of 4k..32k), $((mix_count * 34)) ($((mix_count * 8)) of 256..32k),"
  echo "$((to64k_count * 64)) ($((to64k_count * 7)) of 1k..64k), $((to128k_count * 130)) ($((to128k_count * 10)) of 256..128k), $((far_count * 144)) ($((far_count * 3)) of 64k..128k)$([ "$settle_runs" -gt 0 ] && echo ", $((settle_runs * settle_count * 144)) ($((settle_runs * settle_count * 3)) of 64k..128k at lr $settle_lr)"), answer trained"
  [ "$prefix_grad" = none ] || echo "full BPTT's answer-trained stages with --prefix-grad $prefix_grad"
  header "$out/eval-full/summary.csv"
  for m in untrained truncated full; do row "$out/eval-$m/summary.csv" 4 '%7.2f' "$m: worst depth" min; done
  for m in untrained truncated full; do row "$out/eval-$m/summary.csv" 4 '%7.2f' "$m: mean over depths" mean; done
  for m in untrained truncated full; do row "$out/eval-$m/summary.csv" 5 '%7.3f' "$m: answer loss" mean; done
  echo
  far=$((32 * chunk))
  for m in untrained truncated full; do   # goal 1: every trial in the training lengths whose key is at least 32 chunks before the question
    awk -F, -v far="$far" -v m="$m" -v chunk="$chunk" 'NR > 1 && $6 >= far && $1 <= 2048 { ok += $3 * $4; n += $3 }
      END { printf "%-30s%7.2f  (%d trials at lengths <= 2048 with the key >= %d tokens = 32 chunks of %d before the question)\n", m ": key >= 32 chunks back", n ? ok / n : 0, n, far, chunk }' \
      "$out/eval-$m/summary.csv"
  done
  echo
  echo "needle in real text (licence filler, $hay_trials keys x depths $eval_depths %)"
  header "$out/eval-haystack-full/summary.csv"
  for m in truncated full; do row "$out/eval-haystack-$m/summary.csv" 4 '%7.2f' "$m: worst depth" min; done
  for m in truncated full; do row "$out/eval-haystack-$m/summary.csv" 4 '%7.2f' "$m: mean over depths" mean; done
  echo
  echo "accuracy: the first integer of 10 greedy tokens is the key; answer loss: nats per answer token (uniform digits 2.30)"
} | tee "$out/comparison.txt"

printf '\ndone in %dm%02ds. Outputs in %s:\n' $(((SECONDS - start) / 60)) $(((SECONDS - start) % 60)) "$out"
echo "  comparison.txt                                 the tables above"
echo "  eval-{untrained,truncated,full}/heatmap.png    passkey accuracy by length x depth (summary.csv, trials.jsonl)"
echo "  eval-haystack-{full,truncated}/heatmap.png     the same on licence text"
echo "  position-loss/position-loss.png, .csv          loss by position on held-out licences"
echo "  decay-full.txt                                 the full model's time_decay as memory lengths"
echo "  state-growth-{full,truncated}.txt              the key's share of each layer's state after 1k..128k tokens of filler"
echo "  check-N/, check-N.log                          the stage-3a check: the full model at 2048 tokens after N extensions"
echo "  curriculum-*/, checkN-*/, stream-*/, long-*/, frontier-*/, mix-*/, to64k-*/, to128k-*/, far-*/, settleN-*/, lm-*/  training runs (metrics.jsonl, loss.png, rwkv-final.pth)"
