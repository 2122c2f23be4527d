import numpy as np
from pathlib import Path
from screening.inference import GlaucomaModel
from screening.preprocessing import preprocess_bytes
import sys; m=GlaucomaModel(Path(sys.argv[1] if len(sys.argv) > 1 else 'models'))
for p in sorted(Path('samples/acrima').glob('*/*.jpg')):
    x=preprocess_bytes(p.read_bytes())[0][None]
    prob,cam=m.probabilities_and_cams(x); c=cam[0]
    yy,xx=np.mgrid[0:14,0:14]; r=np.hypot(yy-6.5,xx-6.5)
    i=np.unravel_index(np.argmax(c),c.shape)
    print(p.parent.name[:4], p.name[:5], round(float(prob[0]),3), 'argmax',i, 'r=%.1f'%r[i], 'centre mean %.2f ring mean %.2f'%(c[r<4].mean(), c[r>=6].mean()))
