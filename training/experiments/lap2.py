import os
import csv, numpy as np
from pathlib import Path
from PIL import Image
from sklearn.metrics import roc_auc_score
root=Path(os.environ['ACRIMA_DIR'])
rows=list(csv.DictReader(open(root/'splits.csv')))
y=np.array([r['label']=='glaucoma' for r in rows])
def lv(g, std):
    if std: g=(g-g.mean())/(g.std()+1e-6)
    lap=4*g[1:-1,1:-1]-g[:-2,1:-1]-g[2:,1:-1]-g[1:-1,:-2]-g[1:-1,2:]
    return lap.var()
for W in [224,112]:
  a=[];b=[]
  for r in rows:
    im=Image.open(root/r['path']).convert('L').resize((W,W),Image.Resampling.BILINEAR)
    g=np.asarray(im,np.float32)/255; a.append(lv(g,False)); b.append(lv(g,True))
  print(W,'raw',roc_auc_score(y,a),'std',roc_auc_score(y,b))
