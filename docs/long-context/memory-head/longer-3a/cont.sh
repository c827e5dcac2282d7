#!/usr/bin/env bash
# continue the memory-head model's stage-3a check rounds (full BPTT only) from mh1's round 4; $1 = tag, $2 = lr, $3 = lr-final
# (the record of what ran: /work/exp/mh1 is the output of the memory-head run described in ../README.md, not in the repository)
L=/work/main/scripts/longrwkv; out=/work/exp/mh2/$1; mkdir -p $out; prev=/work/exp/mh1/check4-full/rwkv-final.pth
export LONGRWKV_NO_PROGRESS=1
for r in 5 6 7 8 9 10 11 12 13 14 15 16; do
  $L finetune --model "$prev" --data /work/exp/mh1/data/passkey --ctx-len 2048 --chunk-len 32 --bptt full --steps 2000 \
     --lr $2 --lr-final $3 --warmup 100 --seed $((1 + 100 + r)) --dtype fp32 --out $out/check$r-full > $out/check$r-full.log 2>&1 || { echo "round $r train failed"; exit 1; }
  prev=$out/check$r-full/rwkv-final.pth
  $L eval passkey --model "$prev" --lengths 2048 --depths 0,25,50,75,100 --trials 4 --seed $((1 + 500 + r)) --chunk-len 1024 --out $out/check-$r > $out/check-$r.log 2>&1
  echo "$(date +%H:%M:%S) round $r: $(awk -F, 'NR>1 {printf "d%s %.2f (%.2f)  ", $2, $4, $5}' $out/check-$r/summary.csv)"
done
