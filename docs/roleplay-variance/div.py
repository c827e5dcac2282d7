import json,sys,statistics as st
def load(p): return [json.loads(l) for l in open(p)]
a=load(sys.argv[1]); b=load(sys.argv[2])
n=min(len(a),len(b))
first=next((i for i in range(n) if a[i]['loss']!=b[i]['loss']),None)
print('first differing step:', None if first is None else a[first]['step'], 'identical steps:', first if first is not None else n)
for lo,hi in [(0,5),(5,10),(10,20),(20,30),(30,40),(40,50),(50,70),(70,100),(100,200),(200,500),(500,1000),(1000,3000),(3000,12000)]:
    if hi<=n:
        d=[abs(a[i]['loss']-b[i]['loss'])/a[i]['loss'] for i in range(lo,hi)]
        print(f'steps {lo+1:5d}-{hi:5d}: median relative |dloss| {st.median(d):.1e}  max {max(d):.1e}')
