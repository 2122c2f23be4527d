"""The API over real HTTP: every route, and the bad-input table, one case each."""

from __future__ import annotations

import io
import json

import pytest
import requests
from PIL import Image

from screening import resources
from tests.conftest import BUNDLED_MODEL_VERSION

CLEAR_GLAUCOMA = "glaucoma/Im353_g_ACRIMA.jpg"  # P = 1.00 (see samples/acrima/README.md)
CLEAR_NORMAL = "normal/Im024_ACRIMA.jpg"  # P = 0.04


def image_bytes(sample_dir, name):
    return (sample_dir / name).read_bytes()


@pytest.mark.parametrize("name,label", [(CLEAR_GLAUCOMA, "glaucoma"), (CLEAR_NORMAL, "normal"),
                                        ("glaucoma/Im331_g_ACRIMA.jpg", "glaucoma"),
                                        ("normal/Im034_ACRIMA.jpg", "normal")])
def test_predict_raw_body_returns_expected_label_and_stores_record(api, sample_dir, name, label):
    response = api.post("/predict", data=image_bytes(sample_dir, name), headers={"Content-Type": "image/jpeg"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["label"] == label
    assert {"id", "probability", "confidence", "threshold", "model_version", "latency_ms", "heatmap"} <= set(body)
    assert body["model_version"] == BUNDLED_MODEL_VERSION
    assert (body["probability"] >= body["threshold"]) == (label == "glaucoma")
    assert len(body["heatmap"]) == 14 and max(max(row) for row in body["heatmap"]) == 1.0
    stored = api.get(f"/predictions/{body['id']}")
    assert stored.status_code == 200 and stored.json()["label"] == label


def test_predict_multipart_field_file_and_png_heatmap(api, sample_dir):
    files = {"file": ("eye.jpg", image_bytes(sample_dir, CLEAR_GLAUCOMA), "image/jpeg")}
    response = api.post("/predict?heatmap=png", files=files)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["label"] == "glaucoma"
    import base64

    png = Image.open(io.BytesIO(base64.b64decode(body["heatmap_png_base64"])))
    assert png.format == "PNG" and png.size == (224, 224)


def test_predict_from_s3_key_is_the_same_record_as_the_s3_path(api, cloud, sample_dir):
    s3 = cloud.client("s3")
    key = "incoming/api-test/by-key.jpg"
    s3.put_object(Bucket=cloud.names.image_bucket, Key=key, Body=image_bytes(sample_dir, CLEAR_NORMAL))
    first = api.post("/predict", json={"s3_key": key})
    assert first.status_code == 200, first.text
    assert first.json()["label"] == "normal"
    again = api.post("/predict", json={"s3_key": key})
    assert again.json()["id"] == first.json()["id"]  # one record per (bucket, key, ETag)


def test_batch_predicts_several_images_in_one_request(api, sample_dir):
    files = [("images", (n, image_bytes(sample_dir, n), "image/jpeg")) for n in (CLEAR_GLAUCOMA, CLEAR_NORMAL)]
    files.append(("images", ("bad.jpg", b"garbage", "image/jpeg")))
    response = api.post("/predict/batch", files=files)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r.get("label") for r in results[:2]] == ["glaucoma", "normal"]
    assert results[2]["status"] == "rejected" and results[2]["reason"] == "not_an_image"


def test_batch_over_the_image_bound_says_the_bound(api):
    tiny = io.BytesIO()
    Image.new("RGB", (64, 64)).save(tiny, "PNG")
    files = [("images", (f"{i}.png", tiny.getvalue(), "image/png"))
             for i in range(resources.MAX_BATCH_IMAGES + 1)]
    response = api.post("/predict/batch", files=files)
    assert response.status_code == 413
    assert response.json()["error"] == "too_many_images"
    assert str(resources.MAX_BATCH_IMAGES) in response.json()["message"]


def test_list_predictions_newest_first_and_by_label(api, sample_dir):
    for name in (CLEAR_NORMAL, CLEAR_GLAUCOMA):
        api.post("/predict", data=image_bytes(sample_dir, name), headers={"Content-Type": "image/jpeg"})
    newest = api.get("/predictions?limit=2").json()["items"]
    assert [i["label"] for i in newest] == ["glaucoma", "normal"]
    assert newest[0]["created_at"] >= newest[1]["created_at"]
    only_normal = api.get("/predictions?limit=50&label=normal").json()["items"]
    assert only_normal and all(i["label"] == "normal" for i in only_normal)
    page = api.get("/predictions?limit=1").json()
    assert page["next_cursor"]
    second = api.get(f"/predictions?limit=1&cursor={page['next_cursor']}").json()["items"][0]
    assert second["id"] != page["items"][0]["id"]


def test_status_reports_model_counts_and_queues(api, sample_dir):
    api.post("/predict", data=image_bytes(sample_dir, CLEAR_GLAUCOMA), headers={"Content-Type": "image/jpeg"})
    body = api.get("/status").json()
    assert body["model_version"] == BUNDLED_MODEL_VERSION and body["model_metrics"]["roc_auc"] >= 0.95
    assert body["counts"]["glaucoma"] >= 1 and body["last_prediction_at"]
    assert isinstance(body["queue_depth"], int) and isinstance(body["dead_letter_depth"], int)


def test_presigned_upload_lands_in_incoming_and_is_screened(api, table, sample_dir):
    from tests.localcloud.conftest import wait_for

    response = api.post("/uploads", json={"content_type": "image/jpeg"})
    assert response.status_code == 201, response.text
    upload = response.json()
    assert upload["s3_key"].startswith(resources.INCOMING_PREFIX)
    assert upload["method"] == "POST" and upload["fields"]["Content-Type"] == "image/jpeg"
    put = requests.post(upload["upload_url"], data=upload["fields"],
                        files={"file": ("eye.jpg", image_bytes(sample_dir, CLEAR_GLAUCOMA), "image/jpeg")},
                        timeout=30)
    assert put.status_code in (200, 204), put.text
    items, _ = wait_for(lambda: [i for i in table.scan()["Items"] if i.get("key") == upload["s3_key"]])
    assert items and items[0]["label"] == "glaucoma"


def test_openapi_document_lists_the_routes(api):
    spec = api.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    for path in ("/predict", "/predict/batch", "/predictions", "/predictions/{prediction_id}", "/status",
                 "/uploads"):
        assert path in spec["paths"], path


def _gif(sample_dir) -> bytes:
    out = io.BytesIO()
    Image.open(sample_dir / CLEAR_NORMAL).save(out, "GIF")
    return out.getvalue()


def _bomb() -> bytes:
    out = io.BytesIO()
    Image.new("L", (9000, 9000)).save(out, "PNG")
    return out.getvalue()


BAD_INPUTS = [
    # (case, kwargs for POST /predict, expected status, expected error)
    ("empty body", lambda d: {"data": b"", "headers": {"Content-Type": "image/jpeg"}}, 400, "empty"),
    ("not an image", lambda d: {"data": b"hello", "headers": {"Content-Type": "image/jpeg"}}, 400, "not_an_image"),
    ("truncated image", lambda d: {"data": (d / CLEAR_NORMAL).read_bytes()[:5000],
                                   "headers": {"Content-Type": "image/jpeg"}}, 400, "truncated"),
    ("unsupported format", lambda d: {"data": _gif(d), "headers": {"Content-Type": "image/gif"}},
     415, "unsupported_format"),
    ("decompression bomb", lambda d: {"data": _bomb(), "headers": {"Content-Type": "image/png"}},
     413, "too_many_pixels"),
    ("body over the limit", lambda d: {"data": b"\xff" * (resources.MAX_API_BODY_BYTES + 1000),
                                       "headers": {"Content-Type": "image/jpeg"}}, 413, "body_too_large"),
    ("wrong content type", lambda d: {"data": b"x", "headers": {"Content-Type": "text/plain"}},
     415, "unsupported_content_type"),
    ("malformed multipart", lambda d: {"data": b"--zz\r\nnonsense", "headers": {
        "Content-Type": "multipart/form-data; boundary=zz"}}, 400, "malformed_multipart"),
    ("multipart without file", lambda d: {"files": {"other": ("a.txt", b"x")}}, 400, "missing_file"),
    ("malformed JSON", lambda d: {"data": b"{not json", "headers": {"Content-Type": "application/json"}},
     400, "malformed_json"),
    ("unknown S3 key", lambda d: {"json": {"s3_key": "incoming/nope.jpg"}}, 404, "unknown_s3_key"),
    ("S3 key outside incoming/", lambda d: {"json": {"s3_key": "results/x.jpg"}}, 400, "invalid_s3_key"),
]


@pytest.mark.parametrize("case,make,status,error", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_gets_4xx_with_error_and_message(api, sample_dir, case, make, status, error):
    response = api.post("/predict", **make(sample_dir))
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error and body["message"]


def test_unknown_prediction_id_is_404(api):
    response = api.get("/predictions/does-not-exist")
    assert response.status_code == 404 and response.json()["error"] == "unknown_id"


def test_invalid_query_is_400(api):
    assert api.get("/predictions?limit=1000").json()["error"] == "invalid_limit"
    assert api.get("/predictions?label=maybe").json()["error"] == "invalid_label"
    assert api.get("/predictions?cursor=%%%").json()["error"] == "invalid_cursor"
    import base64

    forged = base64.urlsafe_b64encode(b'{"id": "x", "nonsense": 1}').decode()
    assert api.get(f"/predictions?cursor={forged}").json()["error"] == "invalid_cursor"


def test_unknown_route_is_json_404(api):
    response = api.get("/nowhere")
    assert response.status_code == 404 and response.json()["error"] == "not_found"


def test_api_key_is_required(cloud):
    response = requests.get(cloud.api_url + "/status", timeout=10)
    assert response.status_code == 403
    assert json.loads(response.text)["message"] == "Forbidden"


def test_s3_key_of_a_bad_image_already_rejected_by_the_s3_path_is_a_4xx(api, cloud, table):
    from screening.records import s3_record_id
    from tests.localcloud.conftest import wait_for

    key = "incoming/api-test/not-an-image.jpg"
    etag = cloud.client("s3").put_object(Bucket=cloud.names.image_bucket, Key=key, Body=b"plain text")["ETag"]
    record_id = s3_record_id(cloud.names.image_bucket, key, etag)
    wait_for(lambda: table.get_item(Key={"id": record_id}).get("Item"))
    response = api.post("/predict", json={"s3_key": key})
    assert response.status_code == 400 and response.json()["error"] == "not_an_image"
