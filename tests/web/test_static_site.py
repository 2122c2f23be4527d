"""The page's public paths and the heatmap image over real HTTP (no browser)."""

from __future__ import annotations

import http.client
import time
import io
from pathlib import Path

import requests
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent.parent
SAMPLE = ROOT / "samples" / "acrima" / "glaucoma" / "Im322_g_ACRIMA.jpg"


def raw_get(cloud, path: str) -> int:
    """GET with the path sent exactly as written (requests would normalise '..')."""
    connection = http.client.HTTPConnection("127.0.0.1", cloud.api_port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def test_the_page_needs_no_key_and_the_api_still_does(web_cloud):
    page = requests.get(web_cloud.api_url + "/", timeout=10)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "Eye screening" in page.text and web_cloud.api_key not in page.text  # the key is never baked in
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    script = requests.get(web_cloud.api_url + "/web/app.js", timeout=10)
    assert script.status_code == 200 and "javascript" in script.headers["Content-Type"]
    assert web_cloud.api_key not in script.text
    assert requests.get(web_cloud.api_url + "/status", timeout=10).status_code == 403


def test_samples_are_served_read_only(web_cloud):
    samples = requests.get(web_cloud.api_url + "/samples/index.json", timeout=10).json()["samples"]
    assert len(samples) == 12 and {s["label"] for s in samples} == {"normal", "glaucoma"}
    image = requests.get(web_cloud.api_url + samples[0]["path"], timeout=10)
    assert image.status_code == 200 and image.headers["Content-Type"] == "image/jpeg"
    assert requests.put(web_cloud.api_url + samples[0]["path"], data=b"x", timeout=10).status_code == 403
    assert requests.get(web_cloud.api_url + "/samples/README.md", timeout=10).status_code == 404


def test_nothing_outside_the_public_folders_is_served(web_cloud):
    for path in ("/web/../localcloud/cloud.py", "/web/%2e%2e/README.md", "/samples/../../models/model.json",
                 "/web/.hidden", "/web/", "/samples/normal/..%2f..%2fREADME.md"):
        assert raw_get(web_cloud, path) in (403, 404), path


def test_heatmap_png_of_an_api_prediction(web_cloud, api_session):
    record = api_session.post(web_cloud.api_url + "/predict", data=SAMPLE.read_bytes(),
                              headers={"Content-Type": "image/jpeg"}, timeout=30).json()
    assert all(round(v, 2) == v for row in record["heatmap"] for v in row)
    png = api_session.get(f"{web_cloud.api_url}/predictions/{record['id']}/heatmap.png", timeout=10)
    assert png.status_code == 200 and png.headers["Content-Type"] == "image/png"
    image = Image.open(io.BytesIO(png.content))
    assert image.format == "PNG" and image.size == (224, 224)
    missing = api_session.get(f"{web_cloud.api_url}/predictions/{'0' * 32}/heatmap.png", timeout=10)
    assert missing.status_code == 404 and missing.json()["error"] == "unknown_id"
    assert requests.get(f"{web_cloud.api_url}/predictions/{record['id']}/heatmap.png", timeout=10).status_code == 403


def test_s3_path_stores_its_overlay_under_results_and_rejects_a_black_frame(web_cloud, api_session):
    from screening.records import s3_record_id

    s3 = web_cloud.client("s3")
    bucket = web_cloud.names.image_bucket
    black = io.BytesIO()
    Image.new("RGB", (400, 400)).save(black, "JPEG")
    ids = {}
    for name, data in (("good.jpg", SAMPLE.read_bytes()), ("black.jpg", black.getvalue())):
        key = f"incoming/web-test/{name}"
        etag = s3.put_object(Bucket=bucket, Key=key, Body=data, ContentType="image/jpeg")["ETag"]
        ids[name] = s3_record_id(bucket, key, etag)
    records = {}
    for _ in range(200):
        for name, record_id in ids.items():
            response = api_session.get(f"{web_cloud.api_url}/predictions/{record_id}", timeout=10)
            if response.status_code == 200:
                records[name] = response.json()
        if len(records) == 2:
            break
        time.sleep(0.1)
    assert records["black.jpg"]["status"] == "rejected" and records["black.jpg"]["reason"] == "blank_image"
    assert records["good.jpg"]["status"] == "ok"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="results/").get("Contents", [])]
    assert f"results/{ids['good.jpg']}/heatmap.png" in keys
    assert not [o for o in s3.list_objects_v2(Bucket=bucket, Prefix="incoming/").get("Contents", [])
                if "heatmap" in o["Key"] or ids["good.jpg"] in o["Key"]]  # never under incoming/
    png = api_session.get(f"{web_cloud.api_url}/predictions/{ids['good.jpg']}/heatmap.png", timeout=10)
    overlay = Image.open(io.BytesIO(png.content))
    assert overlay.mode == "RGB" and overlay.size == (224, 224)  # the photograph with its heatmap
    assert api_session.get(f"{web_cloud.api_url}/predictions/{ids['black.jpg']}/heatmap.png",
                           timeout=10).status_code == 404
