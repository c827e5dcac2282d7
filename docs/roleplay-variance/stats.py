import re,statistics as st
rows={}
lead={('new',1):'1.00 0.98 0.68 0.37',('new',2):'0.02 0.00 0.00 0.00',('new',3):'0.98 0.93 0.80 0.37',('new',4):'0.48 0.32 0.23 0.12',
      ('base',1):'0.88 0.87 0.82 0.25',('base',2):'1.00 1.00 0.75 0.40',('base',3):'1.00 1.00 0.98 0.58',('base',4):'0.90 0.93 0.68 0.35'}
for l in open('results.txt'):
    m=re.match(r'(\S+) s(\d+) acc ([\d. ]+?)\s+loss (\S+) train (\d+)s eval (\d+)s',l)
    v,s=m.group(1),int(m.group(2)); rows[(v,s)]=dict(acc=[float(x) for x in m.group(3).split()],loss=float(m.group(4)),t=int(m.group(5)),e=int(m.group(6)),src='here')
for k,a in lead.items():
    if k not in rows: rows[k]=dict(acc=[float(x) for x in a.split()],loss=None,t=None,e=None,src='lead')
print('| version | seed | 256 | 320 | 384 | 512 | final loss | train s | eval s | run by |'); print('|---|---|---|---|---|---|---|---|---|---|')
for k in sorted(rows,key=lambda k:(k[0],k[1])):
    r=rows[k]; print(f"| {k[0]} | {k[1]} | "+' | '.join(f'{x:.2f}' for x in r['acc'])+f" | {r['loss'] if r['loss'] is None else round(r['loss'],3)} | {r['t']} | {r['e']} | {r['src']} |")
for v in ['base','new']:
    seeds=sorted(s for (vv,s) in rows if vv==v)
    accs=[rows[(v,s)]['acc'] for s in seeds]
    print(v,'seeds',seeds)
    for j,L in enumerate([256,320,384,512]):
        xs=[a[j] for a in accs]; print(f'  {L}: mean {st.mean(xs):.2f} sd {st.stdev(xs):.2f} median {st.median(xs):.2f} min {min(xs):.2f} max {max(xs):.2f}')
    m4=[st.mean(a) for a in accs]; print(f'  mean over lengths: mean {st.mean(m4):.3f} sd {st.stdev(m4):.3f}  per seed', [round(x,2) for x in m4])
# paired
common=sorted(s for (v,s) in rows if v=='base' and ('new',s) in rows)
d=[st.mean(rows[('new',s)]['acc'])-st.mean(rows[('base',s)]['acc']) for s in common]
print('paired new-base (mean over lengths) seeds',common,[round(x,2) for x in d],'mean',round(st.mean(d),3),'sd',round(st.stdev(d),3) if len(d)>1 else None)
from scipy import stats as ss
b=[st.mean(rows[('base',s)]['acc']) for s in common]; n=[st.mean(rows[('new',s)]['acc']) for s in common]
print('Mann-Whitney base vs new (per-seed mean acc):', ss.mannwhitneyu(b,n,alternative='two-sided'))
print('paired t:', ss.ttest_rel(n,b)); print('Wilcoxon signed-rank:', ss.wilcoxon(n,b))
fail=lambda xs: sum(1 for x in xs if x<0.3)
print('runs with mean acc < 0.3: base', fail(b), '/', len(b), ' new', fail(n), '/', len(n), ' Fisher', ss.fisher_exact([[fail(b),len(b)-fail(b)],[fail(n),len(n)-fail(n)]]))
for v in ['baselr','newlr','hybnorm','hybsos','hybold']:
    ks=sorted(s for (vv,s) in rows if vv==v)
    print(v, [(s, round(st.mean(rows[(v,s)]['acc']),2)) for s in ks])
