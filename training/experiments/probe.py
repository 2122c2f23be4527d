import os
import csv, sys, time, numpy as np, keras
from pathlib import Path
from sklearn.metrics import roc_auc_score
from screening.preprocessing import decode_image, canonical_input
from training.network import build_classifier
from training.head import fit_head
root=Path(os.environ['ACRIMA_DIR']); rows=list(csv.DictReader(open(root/'splits.csv')))
y=np.array([r['label']=='glaucoma' for r in rows]).astype(int); split=np.array([r['split'] for r in rows])
m=build_classifier(dropout=0.0)
outs=[keras.layers.GlobalAveragePooling2D()(m.get_layer(n).output) for n in ['block4_add','block7_add','block10_add']]
fm=keras.Model(m.inputs, outs)
tr,va,te=split=='train',split=='val',split=='test'
for W in [int(a) for a in sys.argv[1:]]:
    t=time.time()
    X=np.stack([canonical_input(decode_image((root/r['path']).read_bytes(), min_side=2*W)[0],224,W) for r in rows])
    F=fm.predict(X,batch_size=64,verbose=0)
    np.savez(f'runs/probe_w{W}.npz', *F)
    for name,feat in [('b10',F[2]),('b7+10',np.concatenate(F[1:],1)),('b4+7+10',np.concatenate(F,1))]:
        res=[]
        for c in [0.001,0.003,0.01,0.03,0.1]:
            h=fit_head(feat[tr],y[tr],c); res.append((roc_auc_score(y[va],h.logits(feat[va])),c,roc_auc_score(y[te],h.logits(feat[te]))))
        best=max(res); print(W,name,'best C',best[1],'val',round(best[0],3),'test',round(best[2],3),' all val',[round(r[0],3) for r in res], round(time.time()-t), flush=True)
