import csv
import os
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image
from screening.preprocessing import decode_image, preprocess_bytes

from training.acquisition import EXTRA_VARIANTS, VARIANTS
from training.features import feature_bank, load_photos, pooled_model
from training.network import build_classifier

K=int(sys.argv[1]); out=sys.argv[2]
# ACRIMA_DIR must be set: the data is never bundled
root=Path(os.environ['ACRIMA_DIR']); rows=list(csv.DictReader(open(root/'splits.csv')))
paths=[root/r['path'] for r in rows]
y=np.array([r['label']=='glaucoma' for r in rows]).astype(int); split=np.array([r['split'] for r in rows])
widths=np.array([Image.open(p).size[0] for p in paths])
clean=np.stack([preprocess_bytes(p.read_bytes())[0] for p in paths])
photos=load_photos(paths)
m=pooled_model(build_classifier(dropout=0.0))
t=time.time()
bank=feature_bank(m, photos, clean, K, seed=42)
np.savez(out, bank=bank, y=y, split=split, widths=widths, paths=np.array([str(p) for p in paths]))
print('bank done', time.time()-t, flush=True)
# variants of val+test photographs at full resolution
sel=np.flatnonzero(split!='train'); var={}
for name, fn in {**VARIANTS, **EXTRA_VARIANTS}.items():
    xs=[]
    for i in sel:
        full=decode_image(paths[i].read_bytes(), min_side=None)[0]
        xs.append(preprocess_bytes(fn(full))[0])
    var[name]=m.predict(np.stack(xs),batch_size=64,verbose=0)
    print(name, time.time()-t, flush=True)
np.savez(out.replace('.npz','_var.npz'), sel=sel, **var)
print('all done', flush=True)
