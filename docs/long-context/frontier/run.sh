#!/usr/bin/env bash
# a 64k..128k frontier stage from s1's 3f+3g model (all 1.00 to 64k); $1 tag, $2 lr
L=/work/bundle4/scripts/longrwkv; out=/work/exp/fr/$1
export LONGRWKV_NO_PROGRESS=1 OPENBLAS_NUM_THREADS=1 LONGRWKV_JAVA_OPTS="-Djava.util.concurrent.ForkJoinPool.common.parallelism=1 -Dlongrwkv.cpu.threads=1"
$L finetune --model /work/exp/s1/to128k-to64k-p0-p0/rwkv-final.pth --data /work/exp/fr/data/p64-128k --ctx-len 2048 --carry-state stop --chunk-len 32 --bptt full \
  --steps 28800 --lr $2 --warmup 100 --seed 78 --dtype fp32 --out $out > $out.log 2>&1
$L eval passkey --model $out/rwkv-final.pth --lengths 2k,8k,16k,32k,64k,128k --depths 0,50,100 --trials 4 --seed 1001 --chunk-len 1024 --out $out-eval > $out-eval.log 2>&1
tail -9 $out-eval.log
