"""Run the whole service on this machine: `python -m localcloud [--demo]`.

Starts moto's server (S3, SQS, DynamoDB) on 127.0.0.1 with its state kept
under --state-dir, creates the resources as the CDK stack does, serves the API
with --api-workers processes, consumes the queue in its own process, and with
--demo sends the sample images through both paths. Ctrl-C stops everything.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import time
from pathlib import Path

from localcloud.api_gateway import parse_api_keys
from localcloud.cloud import DEFAULT_API_KEY, DEFAULT_STATE_DIR, LocalCloud

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples" / "acrima"


def demo(cloud: LocalCloud) -> None:
    import requests

    headers = {"x-api-key": cloud.api_key}
    samples = sorted(SAMPLES.glob("*/*.jpg"))
    print("\n== Demo 1: POST /predict (raw image body) ==")
    for path in samples[::3]:
        response = requests.post(f"{cloud.api_url}/predict", data=path.read_bytes(),
                                 headers={**headers, "Content-Type": "image/jpeg"}, timeout=30)
        body = response.json()
        print(f"  {path.parent.name}/{path.name}: HTTP {response.status_code} -> {body.get('label')} "
              f"p={body.get('probability')} ({body.get('latency_ms')} ms, model {body.get('model_version')})")

    print("\n== Demo 2: bad input gets a clear 4xx ==")
    response = requests.post(f"{cloud.api_url}/predict", data=b"not an image",
                             headers={**headers, "Content-Type": "image/png"}, timeout=30)
    print(f"  HTTP {response.status_code} {response.json()}")

    print("\n== Demo 3: images dropped under incoming/ in the S3 bucket ==")
    s3 = cloud.client("s3")
    dynamodb = cloud.session().resource("dynamodb", endpoint_url=cloud.aws_endpoint)
    table = dynamodb.Table(cloud.names.results_table)
    from screening.records import s3_record_id

    pending = {}
    for path in samples[1::3]:
        key = f"incoming/demo/{path.name}"
        etag = s3.put_object(Bucket=cloud.names.image_bucket, Key=key, Body=path.read_bytes(),
                             ContentType="image/jpeg")["ETag"]
        pending[s3_record_id(cloud.names.image_bucket, key, etag)] = (key, time.monotonic())
    deadline = time.monotonic() + 30
    while pending and time.monotonic() < deadline:
        for record_id, (key, started) in list(pending.items()):
            item = table.get_item(Key={"id": record_id}).get("Item")
            if item:
                # records are idempotent per (bucket, key, ETag): the same bytes sent again find the
                # record already there, made by the model named in it
                print(f"  s3://{cloud.names.image_bucket}/{key}: {item['status']} -> {item.get('label')} "
                      f"p={item.get('probability')} (record after {time.monotonic() - started:.2f} s, "
                      f"model {item.get('model_version')})")
                del pending[record_id]
        time.sleep(0.1)
    for key, _ in pending.values():
        print(f"  {key}: no record yet")

    status = requests.get(f"{cloud.api_url}/status", headers=headers, timeout=30).json()
    print("\n== GET /status ==\n  " + json.dumps({k: status[k] for k in (
        "model_version", "counts", "queue_depth", "dead_letter_depth", "last_prediction_at")}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--aws-port", type=int, default=4566, help="moto's S3/SQS/DynamoDB endpoint")
    parser.add_argument("--api-port", type=int, default=8080, help="the API's port")
    parser.add_argument("--api-key", default=DEFAULT_API_KEY,
                        help="the admin x-api-key (its key id in requestContext is 'admin')")
    parser.add_argument("--api-keys", default="",
                        help="more keys, one per clinic: clinic-a=key1,clinic-b=key2")
    parser.add_argument("--api-workers", type=int, default=0,
                        help="API worker processes, each a Lambda container (default: one per core)")
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR,
                        help="where records, images, queue messages and models are kept (default: .localcloud/)")
    parser.add_argument("--fresh", action="store_true", help="start empty (forget the state dir's contents)")
    parser.add_argument("--demo", action="store_true", help="send the sample images through both paths")
    parser.add_argument("--exit-after-demo", action="store_true", help="stop after the demo (for scripts)")
    parser.add_argument("--serve-seconds", type=float, default=0,
                        help="stop by itself after this many seconds (0: until Ctrl-C)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    clinic_keys = {name: key for key, name in parse_api_keys(args.api_keys).items()}
    cloud = LocalCloud(aws_port=args.aws_port, api_port=args.api_port, api_key=args.api_key,
                       api_keys=clinic_keys, state_dir=args.state_dir, fresh=args.fresh,
                       api_workers=args.api_workers)
    started = time.monotonic()
    for signum in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C (even if inherited as ignored), or a stop
        signal.signal(signum, _interrupt)
    try:
        cloud.start()
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        print(f"The local cloud did not start: {exc}", file=sys.stderr)
        return 1
    print(f"Local cloud up in {time.monotonic() - started:.1f} s (model {cloud_model_version(cloud)}, "
          f"{cloud.api_workers} API workers)")
    print(f"  state:  {cloud.state_dir}  ({cloud.restored.get('records', 0)} records, "
          f"{cloud.restored.get('objects', 0)} objects, {cloud.restored.get('messages', 0)} queued messages)")
    print(f"  logs:   {cloud.log_dir}  (handler logs, EMF metrics, LiteRT)")
    print(f"  AWS endpoint (S3, SQS, DynamoDB): {cloud.aws_endpoint}  (any access key; region us-east-1)")
    print(f"  API:                              {cloud.api_url}  (header x-api-key: {cloud.api_key})")
    for name, key in clinic_keys.items():
        print(f"    clinic {name}: x-api-key {key}")
    print(f"  image bucket:  {cloud.names.image_bucket}  (drop images under incoming/)")
    print(f"  results table: {cloud.names.results_table}")
    print(f"  queue / DLQ:   {cloud.names.queue} / {cloud.names.dead_letter_queue}")
    print(f"  try: curl -H 'x-api-key: {cloud.api_key}' -H 'Content-Type: image/jpeg' "
          f"--data-binary @samples/acrima/glaucoma/Im353_g_ACRIMA.jpg {cloud.api_url}/predict")
    try:
        if args.demo:
            demo(cloud)
        if args.exit_after_demo:
            return 0
        print("\nServing until Ctrl-C.", flush=True)
        deadline = time.monotonic() + args.serve_seconds if args.serve_seconds else None
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.5)
            gone = [name for name, process in cloud.processes.items() if process.poll() is not None]
            if gone:  # e.g. its storage process was killed: stop the rest rather than serve half a cloud
                print(f"\nThe {', '.join(gone)} process stopped; see {cloud.log_dir}.", flush=True)
                return 1
    except KeyboardInterrupt:
        pass
    finally:
        print("\nStopping the local cloud...", flush=True)
        cloud.stop()
        print("Stopped.")
    return 0


def _interrupt(*_) -> None:
    raise KeyboardInterrupt


def cloud_model_version(cloud: LocalCloud) -> str:
    import requests

    return requests.get(f"{cloud.api_url}/status", headers={"x-api-key": cloud.api_key},
                        timeout=30).json().get("model_version", "?")


if __name__ == "__main__":
    sys.exit(main())
