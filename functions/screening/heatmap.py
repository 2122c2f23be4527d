"""Class-activation heatmaps: where in the photograph the glaucoma evidence lies.

Why the raw CAM was hottest on the black border: the model input is the photograph
padded to a square on black, and many crops carry the camera's black surround. After
the model's per-image standardisation black is a strongly negative plateau, and the
step from it to the bright retina (and the trunk's zero padding at the frame) is the
strongest edge in the picture; the last convolution's features respond there and the
dense weights turn that into positive logit contributions (Im353: the two bottom rows,
half padding, held the map's maximum). Min-max scaling then painted every cell with a
negative contribution as "cool" and every neutral one as lukewarm.

The fix does not depend on the model: the map shows positive evidence only (ReLU, as in
Grad-CAM), restricted to the fundus region computed from the input itself (lit pixels,
eroded by one CAM cell so the rim's edge response is left out), and renormalised to [0, 1]
inside it. The raw CAM is untouched, so the logit still equals mean(cam) + bias.
"""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

from screening import resources
from screening.quality import erode, fundus_mask

# A perceptual dark-to-bright ramp (black, purple, red, orange, pale yellow).
_ANCHORS = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], np.float32)
RIM_MARGIN_PX = 16  # one 16-px CAM cell of the 224-px input: the black-edge response reaches that far
RESULTS_PREFIX = resources.RESULTS_PREFIX


def normalised_grid(cam: np.ndarray) -> np.ndarray:
    """Min-max scale a CAM to [0, 1]; a flat map becomes all zeros (the unrestricted view)."""
    cam = np.asarray(cam, np.float32)
    span = float(cam.max() - cam.min())
    return (cam - cam.min()) / span if span > 1e-9 else np.zeros_like(cam)


def fundus_region(model_input: np.ndarray, margin_px: int = RIM_MARGIN_PX) -> np.ndarray:
    """(S, S) bool: lit fundus pixels at least `margin_px` from any black pixel (padding, surround)."""
    return erode(fundus_mask(np.asarray(model_input, np.float32)), margin_px, outside=True)


def cell_fractions(region: np.ndarray, grid_shape: tuple[int, int]) -> np.ndarray:
    """The share of each CAM cell's pixels that lie inside `region`."""
    h, w = grid_shape
    small = Image.fromarray(region.astype(np.uint8) * 255).resize((w, h), Image.Resampling.BOX)
    return np.asarray(small, np.float32) / 255.0


def restricted_grid(cam: np.ndarray, model_input: np.ndarray) -> np.ndarray:
    """Positive evidence inside the fundus region, scaled so its maximum is 1; zeros elsewhere."""
    cam = np.asarray(cam, np.float32)
    weights = cell_fractions(fundus_region(model_input), cam.shape)
    heat = np.clip(cam, 0.0, None) * weights
    peak = float(heat.max())
    return heat / peak if peak > 1e-9 else np.zeros_like(heat)


def grid_as_list(cam: np.ndarray, model_input: np.ndarray | None = None,
                 decimals: int = 2) -> list[list[float]]:
    """The heatmap stored with a record: restricted to the fundus when the input is given, rounded."""
    grid = restricted_grid(cam, model_input) if model_input is not None else normalised_grid(cam)
    return np.round(grid.astype(np.float64), decimals).tolist()  # float64: 0.29, not 0.28999999


def fundus_mass_share(grid: np.ndarray, model_input: np.ndarray) -> float:
    """The share of a heatmap's mass over the lit fundus (not the padding or the black surround)."""
    grid = np.asarray(grid, np.float32)
    inside = cell_fractions(fundus_mask(np.asarray(model_input, np.float32)), grid.shape)
    total = float(grid.sum())
    return float((grid * inside).sum() / total) if total > 0 else 1.0


def colourise(grid: np.ndarray) -> np.ndarray:
    positions = np.linspace(0.0, 1.0, len(_ANCHORS))
    channels = [np.interp(grid, positions, _ANCHORS[:, c]) for c in range(3)]
    return np.stack(channels, axis=-1).astype(np.uint8)


def upsampled(grid: np.ndarray, size: int) -> np.ndarray:
    image = Image.fromarray(np.asarray(grid, np.float32)).resize((size, size), Image.Resampling.BILINEAR)
    return np.clip(np.asarray(image, np.float32), 0.0, 1.0)


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def overlay_png(model_input: np.ndarray, cam: np.ndarray, alpha: float = 0.6) -> bytes:
    """The model's input in colour with the restricted heatmap blended on, as PNG bytes.

    The blend follows the heat (cold cells leave the photograph visible), and no colour
    falls outside the fundus region.
    """
    return overlay_grid_png(model_input, restricted_grid(cam, model_input), alpha)


def overlay_grid_png(model_input: np.ndarray, grid: np.ndarray, alpha: float = 0.6) -> bytes:
    size = model_input.shape[0]
    heat = upsampled(grid, size) * fundus_region(model_input, margin_px=0)
    weight = (alpha * heat)[..., None]
    blended = (1 - weight) * (np.asarray(model_input, np.float32) * 255.0) + weight * colourise(heat)
    return _png(np.clip(blended, 0, 255).astype(np.uint8))


def heat_png(grid: np.ndarray, size: int = 224) -> bytes:
    """The heatmap alone as RGBA (alpha = heat), for a page to lay over the original image."""
    heat = upsampled(grid, size)
    rgba = np.concatenate([colourise(heat), (heat * 255).astype(np.uint8)[..., None]], axis=-1)
    return _png(rgba)


def overlay_png_base64(model_input: np.ndarray, cam: np.ndarray) -> str:
    return base64.b64encode(overlay_png(model_input, cam)).decode("ascii")


def overlay_key(record_id: str) -> str:
    """Where an S3-path prediction's overlay is kept, in the image bucket."""
    return f"{RESULTS_PREFIX}{record_id}/heatmap.png"


def store_overlay(s3, bucket: str, record_id: str, png: bytes) -> str:
    """Keep an S3-path prediction's overlay in the image bucket under results/ (never incoming/)."""
    key = overlay_key(record_id)
    s3.put_object(Bucket=bucket, Key=key, Body=png, ContentType="image/png")
    return key


def png_for_record(s3, bucket: str, record: dict) -> bytes:
    """The stored overlay of an S3-path prediction, else the record's heatmap alone (RGBA).

    The API path keeps no image, so its heatmap comes back without one; the page lays it
    over the photograph it still holds.
    """
    if record.get("key"):
        try:
            return s3.get_object(Bucket=bucket, Key=overlay_key(record["id"]))["Body"].read()
        except s3.exceptions.NoSuchKey:
            pass
    grid = np.asarray(record.get("heatmap") or [[0.0]], np.float32)
    return heat_png(grid)


def main(argv: list[str] | None = None) -> int:
    """Print, per image, the share of the heatmap's mass on the fundus: raw min-max map vs restricted."""
    import argparse
    from pathlib import Path

    from screening.config import BUNDLED_MODEL_DIR
    from screening.inference import GlaucomaModel
    from screening.preprocessing import preprocess_bytes

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("paths", nargs="+", type=Path, help="image files or folders (searched recursively)")
    parser.add_argument("--model", type=Path, default=BUNDLED_MODEL_DIR)
    args = parser.parse_args(argv)
    model = GlaucomaModel(args.model)
    files = sorted(f for p in args.paths for f in ([p] if p.is_file() else p.rglob("*"))
                   if f.suffix.lower() in (".jpg", ".jpeg", ".png"))
    shares = []
    for path in files:
        tensor, _ = preprocess_bytes(path.read_bytes())
        cam = model.predict(tensor[None])[0].cam
        raw = fundus_mass_share(normalised_grid(cam), tensor)
        restricted = fundus_mass_share(restricted_grid(cam, tensor), tensor)
        shares.append((raw, restricted))
        print(f"{path}: on fundus raw {raw:.3f} restricted {restricted:.3f}")
    if shares:
        print(f"{len(shares)} images: minimum share on fundus raw {min(s[0] for s in shares):.3f}, "
              f"restricted {min(s[1] for s in shares):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
