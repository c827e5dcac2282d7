#!/usr/bin/env bash
# $1 tag, $2 start model, $3 data, $4 steps, $5 lr, $6 seed, $7 lr-final
L=${LONGRWKV:-scripts/longrwkv}; out=${OUT:-.}/$1   # ran as /work/bundle/scripts/longrwkv, OUT=/work/exp/fr
export LONGRWKV_NO_PROGRESS=1 OPENBLAS_NUM_THREADS=1 LONGRWKV_JAVA_OPTS="-Djava.util.concurrent.ForkJoinPool.common.parallelism=1 -Dlongrwkv.cpu.threads=1"
$L finetune --model $2 --data $3 --ctx-len 2048 --carry-state stop --chunk-len 32 --bptt full \
  --steps $4 --lr $5 --lr-final ${7:-$5} --warmup ${8:-100} --seed $6 --dtype fp32 --out $out > $out.log 2>&1
$L eval passkey --model $out/rwkv-final.pth --lengths 2k,8k,16k,32k,64k,128k --depths 0,50,100 --trials 4 --seed 1001 --chunk-len 1024 --out $out-eval > $out-eval.log 2>&1
tail -9 $out-eval.log
