#!/usr/bin/env bash
# one.sh TREE LABEL SEED : init + data (shared per seed) + full-BPTT finetune + eval persona, as roleplay-demo.sh does
set -euo pipefail
tree="$1"; label="$2"; seed="$3"
lw="$tree/scripts/longrwkv"
base=/work/rpexp/seed$seed
out=/work/rpexp/$label-s$seed
mkdir -p "$base" "$out"
export LONGRWKV_NO_PROGRESS=1
if [ ! -f "$base/init.safetensors" ]; then
  "$lw" init --layers 2 --embd 64 --head-size 16 --vocab 256 --seed "$seed" --out "$base/init.safetensors" >/dev/null
  cat > "$base/filler.jsonl" <<'JSONL'
{"messages": [{"role": "user", "content": "What do you see?"}, {"role": "assistant", "content": "The grass is green. The sky is blue."}]}
{"messages": [{"role": "user", "content": "And now?"}, {"role": "assistant", "content": "The sun is yellow. Here we go."}]}
JSONL
  "$lw" data synth persona --tokenizer bytes --template world --facts number --filler-chats "$base/filler.jsonl" --lengths 256,288,320 \
    --count 4000 --seed "$seed" --out "$base/data/persona" >/dev/null
  rm -f "$base/data/persona.mask"
fi
t0=$SECONDS
OPENBLAS_NUM_THREADS=1 LONGRWKV_JAVA_OPTS="${LONGRWKV_JAVA_OPTS:-} -Djava.util.concurrent.ForkJoinPool.common.parallelism=1 -Dlongrwkv.cpu.threads=1" \
  nice -n 10 "$lw" finetune --model "$base/init.safetensors" --data "$base/data/persona" --ctx-len 320 --chunk-len 32 \
    --bptt full --steps "${STEPS:-12000}" --lr "${LR:-1e-3}" --seed "$seed" --dtype fp32 --out "$out/full" > "$out/full.log" 2>&1
t1=$SECONDS
OPENBLAS_NUM_THREADS=1 LONGRWKV_JAVA_OPTS="${LONGRWKV_JAVA_OPTS:-} -Dlongrwkv.cpu.threads=1" nice -n 10 "$lw" eval persona --model "$out/full/rwkv-final.pth" --label full --template world --facts number \
  --filler-chats "$base/filler.jsonl" --lengths 256,320,384,512 --depths 0,50,100 --trials 20 --seed $((seed + 1000)) --chunk-len 32 --out "$out/eval-full" > "$out/eval.log" 2>&1
t2=$SECONDS
acc=$(awk -F, 'NR > 1 { sum[$1] += $4; n[$1]++; if (!($1 in seen)) { seen[$1] = 1; order[++k] = $1 } } END { for (i = 1; i <= k; i++) printf "%.2f ", sum[order[i]] / n[order[i]] }' "$out/eval-full/summary.csv")
loss=$(tail -n 1 "$out/full/metrics.jsonl" | sed -E 's/.*"loss":([0-9.]+).*/\1/')
echo "$label s$seed acc $acc loss $loss train $((t1-t0))s eval $((t2-t1))s" | tee -a /work/rpexp/results.txt
