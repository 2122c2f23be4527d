"""The clinicians' page is deployed with the stack, laid out as the local cloud serves it, and finds the API.

Before this the web bucket stayed empty (the README said `aws s3 sync` by hand)
and the page had no way to learn the API's URL on AWS.
"""

from __future__ import annotations

import json

from localcloud import static_site
from tests.infra.conftest import only

DEPLOYMENT = "Custom::CDKBucketDeployment"


def deployments(template) -> dict[str, dict]:
    """Destination prefix ("" for the bucket's root) -> the deployment resource."""
    found = template.find_resources(DEPLOYMENT)
    return {r["Properties"].get("DestinationBucketKeyPrefix", ""): {**r, "LogicalId": k} for k, r in found.items()}


def asset_dirs(template_path, deployment: dict) -> list:
    return [template_path.parent / f"asset.{key.removesuffix('.zip')}"
            for key in deployment["Properties"]["SourceObjectKeys"]]


def files_in(directory) -> set[str]:
    return {p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file()}


def test_page_samples_and_plots_are_uploaded_to_the_web_bucket_at_deploy_time(synthesized):
    _, template, template_path = synthesized
    found = deployments(template)
    assert set(found) == {"", "web/", "samples/", "model-report/"}
    web_bucket = next(k for k in template.find_resources("AWS::S3::Bucket") if "WebBucket" in k)
    assert all(d["Properties"]["DestinationBucketName"] == {"Ref": web_bucket} for d in found.values())
    [page] = asset_dirs(template_path, found["web/"])
    assert {"index.html", "app.js", "style.css", "vendor/uplot/uPlot.iife.min.js"} <= files_in(page)
    assert "README.md" not in files_in(page)
    [samples] = asset_dirs(template_path, found["samples/"])
    # The images and their README (source and CC BY 4.0 attribution travel with them).
    assert {s["path"].removeprefix("/samples/") for s in static_site.sample_index()} | {"README.md"} == files_in(samples)
    [plots] = asset_dirs(template_path, found["model-report/"])
    assert files_in(plots) and all(name.endswith(".png") for name in files_in(plots))
    # Zipped file assets, built by synth itself: the only Docker images are the two function/training images.
    manifest = json.loads(template_path.with_name(template_path.name.replace(".template.json", ".assets.json"))
                          .read_text())
    for deployment in found.values():
        for key in deployment["Properties"]["SourceObjectKeys"]:
            assert manifest["files"][key.removesuffix(".zip")]["source"]["packaging"] == "zip"
    assert len(manifest["dockerImages"]) == 2


def test_config_json_tells_the_page_the_api_url_and_the_root_files_go_last(synthesized):
    _, template, template_path = synthesized
    root = deployments(template)[""]
    contents = {}
    for directory in asset_dirs(template_path, root):
        for name in files_in(directory):
            contents[name] = (directory / name).read_text()
    assert set(contents) == {"index.html", "config.json", "samples/index.json", "model-report/index.json"}
    assert contents["index.html"] == (static_site.WEB_DIR / "index.html").read_text()
    assert json.loads(contents["samples/index.json"]) == {"samples": static_site.sample_index()}
    assert json.loads(contents["model-report/index.json"]) == static_site.model_report_index()
    # config.json = {"ApiUrl": <marker>}; CloudFormation puts the stage's invoke URL in at deploy time.
    marker = contents["config.json"].split(":", 1)[1].rstrip("}")
    assert contents["config.json"].startswith('{"ApiUrl":')
    [markers] = [m for m in root["Properties"]["SourceMarkers"] if m]
    url = json.dumps(markers[marker])
    rest_api = next(iter(template.find_resources("AWS::ApiGateway::RestApi")))
    assert f'{{"Ref": "{rest_api}"}}' in url and ".execute-api." in url
    assert root["Properties"]["Prune"] is False  # never deletes the folders' files
    folder_ids = {d["LogicalId"] for prefix, d in deployments(template).items() if prefix}
    assert folder_ids <= set(root["DependsOn"])
    assert root["Properties"]["SystemMetadata"]["cache-control"] == "no-cache"


def test_cloudfront_serves_the_page_over_https_from_its_root(template):
    distribution = only(template, "AWS::CloudFront::Distribution")["Properties"]["DistributionConfig"]
    assert distribution["DefaultRootObject"] == "index.html"
    assert distribution["DefaultCacheBehavior"]["ViewerProtocolPolicy"] == "redirect-to-https"
