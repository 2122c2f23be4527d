"""Where each model's class-activation map lies on the 12 sample images: the raw CAM (hottest
cell, centre and ring means) and the heatmap serving draws (screening.heatmap.restricted_grid:
its peak's distance from the centre, and its share of mass within 4 cells of the centre).

    PYTHONPATH=functions:. python training/experiments/cam.py [model dir ...]   (default: models)
"""
import sys
from pathlib import Path

import numpy as np

from screening.heatmap import restricted_grid
from screening.inference import GlaucomaModel
from screening.preprocessing import preprocess_bytes

yy, xx = np.mgrid[0:14, 0:14]
radius = np.hypot(yy - 6.5, xx - 6.5)
for folder in sys.argv[1:] or ["models"]:
    model = GlaucomaModel(Path(folder))
    rim_peaks, ring_positive, shares, peaks = 0, 0, [], []
    for p in sorted(Path("samples/acrima").glob("*/*.jpg")):
        x = preprocess_bytes(p.read_bytes())[0]
        result = model.predict(x[None])[0]
        cam, served = result.cam, restricted_grid(result.cam, x)
        raw_peak = np.unravel_index(np.argmax(cam), cam.shape)
        served_peak = np.unravel_index(np.argmax(served), served.shape)
        share = float(served[radius < 4].sum() / max(served.sum(), 1e-9))
        rim_peaks += radius[raw_peak] >= 6
        ring_positive += cam[radius >= 6].mean() > 0
        shares.append(share)
        peaks.append(radius[served_peak])
        print(f"{folder} {p.parent.name[:4]} {p.name[:5]} p={result.probability:.3f} "
              f"raw peak r={radius[raw_peak]:.1f} centre mean {cam[radius < 4].mean():.2f} "
              f"ring mean {cam[radius >= 6].mean():.2f} | served peak r={radius[served_peak]:.1f}, "
              f"share within 4 cells {share:.2f}")
    print(f"{folder}: raw CAM hottest on the ring (r >= 6) for {rim_peaks} of {len(shares)}, ring mean > 0 "
          f"for {ring_positive}; served heatmap peak r <= {max(peaks):.1f} cells, median share within "
          f"4 cells {np.median(shares):.2f}")
