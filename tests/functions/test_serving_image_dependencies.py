"""The Lambda image's dependency set is complete and TensorFlow-free.

No Docker engine runs here, so instead of building functions/Dockerfile this
installs functions/requirements.txt alone into a fresh virtual environment and
runs the API handler there on a real image, with only what the image copies
(functions/screening, functions/handlers, the model) on the path. AWS is
moto's server, in this test process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import boto3
import pytest

from localcloud.provision import provision
from screening.resources import ResourceNames
from tests.conftest import BUNDLED_MODEL_VERSION

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent("""
    import base64, importlib.util, json, sys, types
    sys.path[:0] = [sys.argv[1]]
    from handlers import api
    image = open(sys.argv[2], "rb").read()
    event = {"httpMethod": "POST", "path": "/predict", "resource": "/predict",
             "headers": {"content-type": "image/jpeg"}, "multiValueHeaders": {},
             "queryStringParameters": None, "multiValueQueryStringParameters": None,
             "pathParameters": None, "requestContext": {"requestId": "r1", "stage": "prod"},
             "body": base64.b64encode(image).decode(), "isBase64Encoded": True}
    context = types.SimpleNamespace(function_name="api", memory_limit_in_mb=2048, aws_request_id="r1",
                                    invoked_function_arn="arn:aws:lambda:us-east-1:1:function:api")
    response = api.handler(event, context)
    print(json.dumps({"response": response,
                      "tensorflow_installed": importlib.util.find_spec("tensorflow") is not None,
                      "tensorflow_imported": "tensorflow" in sys.modules}))
""")


@pytest.mark.slow
def test_handler_runs_in_a_venv_with_only_the_serving_requirements(tmp_path, sample_files):
    from moto.server import ThreadedMotoServer

    from localcloud.cloud import EndpointSession, free_port

    venv = tmp_path / "serving-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    install = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "-r",
                              str(ROOT / "functions" / "requirements.txt")],
                             capture_output=True, text=True, timeout=900)
    assert install.returncode == 0, install.stderr[-2000:]

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        session = boto3.session.Session(aws_access_key_id="x", aws_secret_access_key="x",
                                        region_name="us-east-1")

        names = ResourceNames.for_stage("venvtest")
        provision(EndpointSession(session, endpoint), names)
        env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"),
               "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x",
               "AWS_DEFAULT_REGION": "us-east-1", "RESULTS_TABLE": names.results_table,
               "IMAGE_BUCKET": names.image_bucket, "MODEL_DIR": str(ROOT / "models"),
               "POWERTOOLS_METRICS_DISABLED": "true"}
        run = subprocess.run([str(python), "-c", SCRIPT, str(ROOT / "functions"),
                              str(sample_files["glaucoma"][-1])],
                             capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
        assert run.returncode == 0, run.stderr[-3000:]
        out = json.loads(run.stdout.strip().splitlines()[-1])
    finally:
        server.stop()
    assert out["tensorflow_installed"] is False and out["tensorflow_imported"] is False
    assert out["response"]["statusCode"] == 200
    body = json.loads(out["response"]["body"])
    assert body["label"] == "glaucoma" and body["model_version"] == BUNDLED_MODEL_VERSION
