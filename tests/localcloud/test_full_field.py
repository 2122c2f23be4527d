"""Full-field photographs over real HTTP: cataract screened on the whole field, glaucoma on a crop
around the optic disc the service finds itself (issue 13)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

CSDI = Path(__file__).resolve().parent.parent / "fixtures" / "csdi"
QUALITY = Path(__file__).resolve().parent.parent / "fixtures" / "quality"
EXPERT = {r["file"]: r for r in csv.DictReader((CSDI / "annotations.csv").open())}


def post(api, data: bytes, condition: str | None = None):
    query = f"?condition={condition}" if condition else ""
    return api.post("/predict" + query, data=data, headers={"Content-Type": "image/jpeg"})


@pytest.mark.parametrize("name", ["cataract_019.jpg", "CGR2.jpg"])
def test_a_csdi_photograph_is_screened_for_cataract_with_a_severity(api, name):
    response = post(api, (CSDI / name).read_bytes(), "cataract")
    assert response.status_code == 200, response.text
    body = response.json()
    expert = float(EXPERT[name]["severity"])
    assert body["condition"] == "cataract" and body["model_version"].startswith("csdi-")
    assert body["label"] == ("cataract" if expert >= 4 else "normal")
    assert (body["probability"] >= body["threshold"]) == (body["label"] == "cataract")
    assert 0 <= body["severity"] <= 10 and abs(body["severity"] - expert) <= 2.5
    assert len(body["heatmap"]) == 14 and max(max(row) for row in body["heatmap"]) == 1.0
    assert "crop_box" not in body
    assert api.get(f"/predictions/{body['id']}").json()["severity"] == body["severity"]


@pytest.mark.parametrize("name", ["cataract_019.jpg", "CGR2.jpg"])
def test_the_same_photograph_screened_for_glaucoma_is_cropped_around_its_disc(api, name):
    response = post(api, (CSDI / name).read_bytes())
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["cropped"] is True and body["label"] in ("normal", "glaucoma") and "severity" not in body
    left, top, right, bottom = body["crop_box"]
    assert right - left == bottom - top > 0
    e = EXPERT[name]
    x1, y1, x2, y2 = (float(e[k]) for k in ("disc_x1", "disc_y1", "disc_x2", "disc_y2"))
    diameter = ((x2 - x1) + (y2 - y1)) / 2
    # the crop is centred on the disc: within half a disc diameter of the expert box's centre
    assert abs((left + right) / 2 - (x1 + x2) / 2) <= diameter / 2
    assert abs((top + bottom) / 2 - (y1 + y2) / 2) <= diameter / 2
    assert left <= x1 and top <= y1 and right >= x2 and bottom >= y2  # the whole disc is in the crop
    assert len(body["heatmap"]) == 14


def test_an_acrima_crop_is_not_cropped_again(api, sample_dir):
    response = post(api, (sample_dir / "glaucoma" / "Im353_g_ACRIMA.jpg").read_bytes())
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["cropped"] is False and "crop_box" not in body and body["label"] == "glaucoma"


@pytest.mark.parametrize("condition", [None, "cataract"])
def test_a_non_fundus_photograph_is_rejected_for_both_conditions(api, condition):
    response = post(api, (QUALITY / "coffee.jpg").read_bytes(), condition)
    assert response.status_code == 422 or response.status_code == 400, response.text
    assert response.json()["error"] == "not_fundus"


def test_an_unknown_condition_is_a_404(api):
    response = post(api, (CSDI / "CGR2.jpg").read_bytes(), "retinopathy")
    assert response.status_code == 404 and response.json()["error"] == "unknown_condition"


def test_the_s3_path_screens_cataract_when_the_object_says_so_in_its_metadata(cloud, table):
    from screening.records import s3_record_id
    from tests.localcloud.conftest import wait_for

    s3 = cloud.client("s3")
    records = {}
    for condition in ("cataract", None):
        key = f"incoming/full-field-{condition or 'glaucoma'}/cataract_019.jpg"
        extra = {"Metadata": {"condition": condition}} if condition else {}
        etag = s3.put_object(Bucket=cloud.names.image_bucket, Key=key,
                             Body=(CSDI / "cataract_019.jpg").read_bytes(), **extra)["ETag"]
        item, _ = wait_for(lambda: table.get_item(
            Key={"id": s3_record_id(cloud.names.image_bucket, key, etag)}, ConsistentRead=True).get("Item"))
        records[condition] = item
    cataract, glaucoma = records["cataract"], records[None]
    assert cataract["status"] == "ok" and cataract["label"] == "cataract" and cataract["condition"] == "cataract"
    assert 4.5 <= float(cataract["severity"]) <= 9.5 and "crop_box" not in cataract
    assert glaucoma["status"] == "ok" and glaucoma["cropped"] is True and "severity" not in glaucoma


def test_a_batch_takes_the_condition_too(api):
    files = [("images", (name, (CSDI / name).read_bytes(), "image/jpeg")) for name in ("CGR2.jpg", "cataract_019.jpg")]
    response = api.post("/predict/batch?condition=cataract", files=files)
    assert response.status_code == 200, response.text
    parts = response.json()["results"]
    assert [p["label"] for p in parts] == ["normal", "cataract"]
    assert parts[0]["severity"] < parts[1]["severity"]
