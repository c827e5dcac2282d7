#!/usr/bin/env bash
# stages 3b-3g of scripts/long-context-demo.sh (full BPTT only) from a memory-head stage-3a model; $1 = tag, $2 = start model
set -euo pipefail
L=/work/main/scripts/longrwkv; D=/work/exp/mh1/data; out=/work/exp/mh3/$1; mkdir -p $out; prev=$2
export LONGRWKV_NO_PROGRESS=1 OPENBLAS_NUM_THREADS=1
export LONGRWKV_JAVA_OPTS="-Djava.util.concurrent.ForkJoinPool.common.parallelism=1 -Dlongrwkv.cpu.threads=1"
quick() { $L eval passkey --model "$1" --lengths 2k,8k,32k,128k --depths 0,50,100 --trials 2 --seed 1001 --chunk-len 1024 --out $out/q-$2 > $out/q-$2.log 2>&1
  echo "$(date +%H:%M:%S) after $2: $(awk -F, 'NR>1 {a[$1]+=$4; n[$1]++} END {for (l in a) printf "%s %.2f  ", l, a[l]/n[l]}' $out/q-$2/summary.csv)"; }
st() { local name=$1; shift; $L finetune --model "$prev" "$@" --ctx-len 2048 --chunk-len 32 --bptt full --dtype fp32 --out $out/$name > $out/$name.log 2>&1
  prev=$out/$name/rwkv-final.pth; grep '^trained' $out/$name.log; }
st stream --data $D/passkey-long --carry-state stop --steps 1500 --lr 5e-4 --seed 1
st long --data $D/passkey-128k --carry-state stop --steps 7620 --lr 1e-4 --warmup 300 --seed 1 --prefix-grad none
st frontier --data $D/passkey-32k --carry-state stop --steps 7500 --lr 1e-4 --warmup 100 --seed 1 --prefix-grad none
st mix --data $D/passkey-mix --carry-state stop --steps 5100 --lr 1e-4 --warmup 100 --seed 4 --prefix-grad none
quick $prev 3e
st to64k --data $D/passkey-to64k --carry-state stop --steps 19200 --lr 1e-4 --warmup 100 --seed 21 --prefix-grad none
quick $prev 3f
st to128k --data $D/passkey-to128k --carry-state stop --steps 39000 --lr 2e-5 --warmup 100 --seed 31 --prefix-grad none
$L eval passkey --model "$prev" --lengths 2k,8k,16k,32k,64k,128k --depths 0,50,100 --trials 4 --seed 1001 --chunk-len 1024 --out $out/eval-to128k > $out/eval-to128k.log 2>&1
tail -12 $out/eval-to128k.log
