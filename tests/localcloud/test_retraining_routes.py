"""The retraining routes over real HTTP in the local cloud (the jobs themselves run in
tests/functions/test_retraining_loop.py). The fixture is the local cloud of this branch; the
lead re-points it at the rewritten gateway when merging."""

from __future__ import annotations

import json
from pathlib import Path

import requests

# the version of the model bundled in models/ (its card), whichever model that is
BUNDLED = json.loads((Path(__file__).resolve().parents[2] / "models" / "model.json").read_text())["version"]


def test_models_dataset_and_a_labelled_upload_over_http(api, sample_files):
    models = api.get("/models")
    assert models.status_code == 200, models.text
    body = models.json()
    assert body["current"]["version"] == BUNDLED  # bundled until a job registers a version
    before = api.get("/dataset").json()
    assert before["by_source"]["base_set"]["total"] == 705  # the base set travels with the project

    upload = api.post("/uploads/training", json={"label": "glaucoma", "site": "http-site",
                                                 "content_type": "image/jpeg"})
    assert upload.status_code == 201, upload.text
    ticket = upload.json()
    put = requests.put(ticket["upload_url"], data=sample_files["glaucoma"][0].read_bytes(),
                       headers=ticket["headers"], timeout=10)
    assert put.status_code == 200
    after = api.get("/dataset").json()
    assert after["by_site"]["http-site"] == {"glaucoma": 1}
    assert after["total"] == before["total"] + 1


def test_bad_requests_get_clear_errors(api):
    cases = [
        (api.post("/uploads/training", json={"label": "cataract"}), 400, "invalid_upload"),
        (api.post("/uploads/training", json={"label": "normal", "site": "../x"}), 400, "invalid_upload"),
        (api.post("/retrain", json={"hyperparameters": {"epochs": {"n": 1}}}), 400, "invalid_hyperparameters"),
        (api.post("/retrain", data=b"{oops", headers={"content-type": "application/json"}), 400, None),
        (api.get("/retrain/screening-glaucoma-20000101-000000"), 404, "unknown_job"),
        (api.post("/models/no-such-version/promote"), 404, "unknown_version"),
        (api.post("/retrain?condition=retinopathy", json={}), 404, "unknown_condition"),
        (api.get("/models?condition=../x"), 400, "invalid_condition"),
    ]
    for response, status, error in cases:
        assert response.status_code == status, (response.request.url, response.text)
        if error:
            assert response.json()["error"] == error
