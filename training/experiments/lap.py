import os
import csv, time, numpy as np, sys
from pathlib import Path
from sklearn.metrics import roc_auc_score
from screening import preprocessing as P
root=Path(os.environ['ACRIMA_DIR'])
rows=list(csv.DictReader(open(root/'splits.csv')))
y=np.array([r['label']=='glaucoma' for r in rows])
data=[(root/r['path']).read_bytes() for r in rows]
def lapvar(x):
    g=x@np.array(P.LUMA_WEIGHTS,np.float32); m=P.circle_mask(224)[...,0]>0.99
    g=(g-g[m].mean())/(g[m].std()+1e-6)
    lap=4*g[1:-1,1:-1]-g[:-2,1:-1]-g[2:,1:-1]-g[1:-1,:-2]-g[1:-1,2:]
    return lap[m[1:-1,1:-1]].var()
for W in [int(a) for a in sys.argv[1:]]:
    t=time.perf_counter(); v=[]
    for d in data:
        im,_=P.decode_image(d, min_side=2*W); v.append(lapvar(P.canonical_input(im,224,W)))
    print(W, 'lap AUC', round(roc_auc_score(y,v),3), 'ms/img', round((time.perf_counter()-t)/len(data)*1000,2), flush=True)
