"""The clinicians' page and the bundled samples, served by the local cloud without a key.

On AWS the page lies in a private S3 bucket behind CloudFront; here the gateway asks
`static_response` first for every GET and only sends the rest to the API (with its key
check). Public, key-less paths, read-only:
- `/` and `/index.html`: web/index.html;
- `/web/<file>`: anything under web/ (the page's script, styles, vendored chart library);
- `/samples/index.json` and `/samples/<label>/<file>.jpg`: samples/acrima, the bundled demo images;
- `/model-report/index.json` and `/model-report/<plot>.png`: the bundled model's evaluation plots.
Nothing else is served: no listing, no dot files, nothing outside those two folders.
"""

from __future__ import annotations

import json
import mimetypes
from pathlib import Path
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parent.parent
WEB_DIR = ROOT / "web"
SAMPLES_DIR = ROOT / "samples" / "acrima"
REPORT_DIR = ROOT / "models" / "report"
MODEL_CARD = ROOT / "models" / "model.json"
SAMPLE_SUFFIXES = (".jpg", ".jpeg", ".png")
PLOT_TITLES = {"roc": "ROC curve", "precision_recall": "Precision-recall",
               "confusion_matrix": "Confusion matrix", "history": "Training history"}
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".json": "application/json", ".svg": "image/svg+xml",
                 ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".txt": "text/plain; charset=utf-8",
                 ".md": "text/plain; charset=utf-8", ".ico": "image/x-icon"}
# Scripts and styles from this origin only; images it draws come from files the user picked (blob:).
# It calls the API (this origin) and sends training uploads to presigned S3 URLs (moto locally).
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
                           "connect-src 'self' http://127.0.0.1:* http://localhost:* https://*.amazonaws.com; "
                           "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'")
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
                    "Content-Security-Policy": CONTENT_SECURITY_POLICY, "X-Frame-Options": "DENY"}

StaticResponse = tuple[int, dict[str, str], bytes]


def is_static_path(raw_path: str) -> bool:
    path = urlsplit(raw_path).path
    return path in ("/", "/index.html", "/config.json") or path.startswith(("/web/", "/samples/", "/model-report/"))


def _inside(base: Path, relative: str) -> Path | None:
    """base/relative if it is a plain file inside base (no '..', no dot files, no links out)."""
    parts = [p for p in relative.split("/") if p]
    if not parts or any(p.startswith(".") or "\\" in p or "\x00" in p for p in parts):
        return None
    candidate = base.joinpath(*parts).resolve()
    try:
        candidate.relative_to(base.resolve())
    except ValueError:
        return None
    return candidate if candidate.is_file() else None


def _file(path: Path, cache_seconds: int) -> StaticResponse:
    content_type = CONTENT_TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0] \
        or "application/octet-stream"
    headers = {"Content-Type": content_type, "Cache-Control": f"public, max-age={cache_seconds}",
               **SECURITY_HEADERS}
    return 200, headers, path.read_bytes()


def _json(body: bytes) -> StaticResponse:
    return 200, {"Content-Type": "application/json", "Cache-Control": "no-cache", **SECURITY_HEADERS}, body


def _not_found(path: str) -> StaticResponse:
    body = json.dumps({"error": "not_found", "message": f"No file {path}."}).encode()
    return 404, {"Content-Type": "application/json", **SECURITY_HEADERS}, body


def sample_index() -> list[dict[str, str]]:
    """The bundled samples: label (the folder) and the URL path of each."""
    return [{"label": f.parent.name, "name": f.name, "path": f"/samples/{f.parent.name}/{f.name}"}
            for f in sorted(SAMPLES_DIR.glob("*/*")) if f.suffix.lower() in SAMPLE_SUFFIXES]


def model_report_index() -> dict:
    """The bundled model's version and its evaluation plots (models/report/*.png)."""
    version = json.loads(MODEL_CARD.read_text()).get("version") if MODEL_CARD.is_file() else None
    plots = [{"title": PLOT_TITLES.get(p.stem, p.stem.replace("_", " ")), "path": f"/model-report/{p.name}"}
             for p in sorted(REPORT_DIR.glob("*.png"))]
    return {"version": version, "plots": plots}


def static_response(method: str, raw_path: str) -> StaticResponse | None:
    """The answer for a public page path, or None when the path belongs to the API."""
    if method not in ("GET", "HEAD") or not is_static_path(raw_path):
        return None
    path = unquote(urlsplit(raw_path).path)
    if path in ("/", "/index.html"):
        return _file(WEB_DIR / "index.html", 0)
    if path.startswith("/web/"):
        found = _inside(WEB_DIR, path[len("/web/"):])
        return _file(found, 60) if found else _not_found(path)
    if path == "/config.json":  # deployed, the stack writes {"ApiUrl": ...}; here the API is this origin
        return _json(b"{}")
    if path == "/samples/index.json":
        body = json.dumps({"samples": sample_index()}).encode()
        return _json(body)
    if path == "/model-report/index.json":
        body = json.dumps(model_report_index()).encode()
        return _json(body)
    if path.startswith("/model-report/"):
        found = _inside(REPORT_DIR, path[len("/model-report/"):])
        return _file(found, 300) if found and found.suffix == ".png" else _not_found(path)
    found = _inside(SAMPLES_DIR, path[len("/samples/"):])
    if found is None or found.suffix.lower() not in SAMPLE_SUFFIXES:
        return _not_found(path)
    return _file(found, 3600)
