#!/usr/bin/env python3
"""Training answer loss by prompt length (pieces of 2048 per prompt), first half vs second half of each run."""
import json, sys, collections
parts = int(sys.argv[1]) if sys.argv[1].isdigit() else 2
for d in [a for a in sys.argv[1:] if not a.isdigit()]:
    rows = [json.loads(l) for l in open(d + '/metrics.jsonl')]
    trained, run = [], 0
    for r in rows:
        run += 1
        if not r.get('state_only'):
            trained.append((run, r['loss'])); run = 0
    out = collections.defaultdict(lambda: [[] for _ in range(parts)])
    for i, (p, loss) in enumerate(trained):
        out[p][i * parts // len(trained)].append(loss)
    print(d, ' '.join(f"{p*2}k:" + '->'.join(f"{sum(a)/max(1,len(a)):.3f}" for a in v) for p, v in sorted(out.items())))
