"""The page in real headless Chromium (Debian's, driven by Playwright) against the local cloud.

One browser page walks what a clinician does: connect with the key, screen a sample
and a bad file, read the history, the model, retraining and monitoring tabs, at desktop
and at phone width. Screenshots go to test-output/web/.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent.parent
SAMPLE = ROOT / "samples" / "acrima" / "glaucoma" / "Im353_g_ACRIMA.jpg"
CATARACT = ROOT / "tests" / "fixtures" / "csdi" / "cataract_019.jpg"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
TIMEOUT_MS = 20_000
# The job the page's button starts, cut to minutes' worth of seconds: the page's loop (start, follow,
# show the gate's decision) is what this file tests; the full job is
# tests/functions/test_retraining_loop.py's.
SMALL_JOB = {"hyperparameters": {"epochs": "3", "augmented_copies": "0", "invariance_variants": "grey"}}
# Chrome logs every non-2xx fetch as a console error; these are the refusals the test provokes.
EXPECTED_RESOURCE_ERRORS = re.compile(r"^Failed to load resource: the server responded with a status of (400|404|415) ")


@pytest.fixture(scope="module")
def page(browser, web_cloud):
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.console_problems = []
    page.on("console", lambda m: m.type == "error" and page.console_problems.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: page.console_problems.append(f"pageerror: {e}"))
    page.goto(web_cloud.api_url + "/")
    yield page
    context.close()


def unexpected(problems: list[str]) -> list[str]:
    return [p for p in problems if not EXPECTED_RESOURCE_ERRORS.match(p.removeprefix("error: "))]


def test_the_page_loads_without_a_key_and_asks_for_it(page, web_cloud):
    assert page.title() == "Eye screening"
    dialog = page.locator("#key-dialog")
    assert dialog.is_visible()
    page.fill("#api-key", web_cloud.api_key)
    page.keyboard.press("Enter")  # keyboard only
    assert not dialog.is_visible()
    assert page.evaluate("sessionStorage.getItem('screening.apiKey')") == web_cloud.api_key
    assert page.locator("#key-state").inner_text().startswith("Key set")


def test_an_image_is_screened_with_label_bar_and_heatmap(page, output_dir):
    page.set_input_files("#file-input", str(SAMPLE))
    card = page.locator(".result[data-status=ok]").first
    card.wait_for()
    assert card.get_attribute("data-label") == "glaucoma"
    assert card.locator(".badge.glaucoma").inner_text().lower() == "glaucoma"
    fill = card.locator(".bar .fill").evaluate("el => el.getBoundingClientRect().width / el.parentElement.getBoundingClientRect().width")
    assert 0.9 < fill <= 1.0  # p = 0.99
    threshold = card.locator(".bar .threshold").evaluate("el => parseFloat(el.style.left)")
    served = json.loads((ROOT / "models" / "model.json").read_text())
    assert threshold == pytest.approx(served["threshold"] * 100, abs=0.01)  # the card's threshold
    assert "acrima" in card.locator("dl.facts").inner_text()
    # The heatmap is drawn over the photograph: moving the opacity slider changes the pixels.
    canvas = card.locator("canvas")
    checksum = "el => { const d = el.getContext('2d').getImageData(0, 0, el.width, el.height).data; let s = 0; for (let i = 0; i < d.length; i += 4) s += d[i] + 2 * d[i + 1] + 3 * d[i + 2]; return s; }"
    slider = card.locator("input[type=range]")
    slider.fill("0")
    without_heat = canvas.evaluate(checksum)
    slider.fill("100")
    with_heat = canvas.evaluate(checksum)
    assert without_heat > 0 and with_heat != without_heat
    page.screenshot(path=str(output_dir / "screen-desktop.png"), full_page=True)


def test_a_non_image_and_an_unusable_photo_show_clear_errors(page):
    page.set_input_files("#file-input", files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"not an image"}])
    refused = page.locator(".result[data-error=unsupported_content_type]")
    refused.wait_for()
    assert "Refused (415 unsupported_content_type)" in refused.inner_text()
    # A black image: refused with its reason (full-field photographs are now
    # cropped around their disc, see the crop-box test, so they no longer serve here).
    page.set_input_files("#file-input", files=[{"name": "black.png", "mimeType": "image/png", "buffer": black_png()}])
    blank = page.locator(".result[data-status=refused]", has_text="black.png")
    blank.wait_for()
    assert blank.get_attribute("data-error") == "blank_image", blank.inner_text()
    assert "no content" in blank.locator("[role=alert]").inner_text()
    assert blank.locator("[role=alert]").count() == 1


def test_the_history_lists_it_and_opens_the_record(page, web_cloud, api_session):
    # A black frame through the S3 path: a stored `rejected` record for the filter.
    web_cloud.client("s3").put_object(Bucket=web_cloud.names.image_bucket, Key="incoming/page-test/black.png",
                                      Body=black_png(), ContentType="image/png")
    screened_id = page.locator(".result[data-status=ok]").first.get_attribute("data-id")
    page.click("#tab-history")
    row = page.locator(f"#history-table tr[data-id='{screened_id}']")
    row.wait_for()
    assert "glaucoma" in row.inner_text().lower()
    row.locator("button").click()
    detail = page.locator("#history-detail")
    detail.locator("canvas").wait_for()  # the photograph screened in this tab, with its heatmap
    detail.locator("img").wait_for()     # the stored heatmap image from GET /predictions/{id}/heatmap.png
    assert detail.locator("img").evaluate("img => img.complete && img.naturalWidth") == 224
    assert screened_id in detail.locator("pre.record").text_content()  # inside a closed <details>
    wait_until(lambda: any(i["status"] == "rejected" for i in
                           api_session.get(web_cloud.api_url + "/predictions?limit=50", timeout=10).json()["items"]))
    page.select_option("#history-filter", "rejected")
    rejected = page.locator("#history-table tr[data-status=rejected]").first
    rejected.wait_for()
    assert "blank_image" in rejected.inner_text().lower()  # shown upper-case by CSS
    assert page.locator("#history-table tr[data-status=ok]").count() == 0
    page.select_option("#history-filter", "glaucoma")
    page.locator(f"#history-table tr[data-id='{screened_id}']").wait_for()


def test_the_model_tab_shows_the_served_model_and_its_plots(page, web_cloud):
    page.click("#tab-model")
    page.locator("#model-current strong").wait_for()
    served = json.loads((ROOT / "models" / "model.json").read_text())
    assert page.locator("#model-current strong").inner_text() == served["version"]
    assert "roc_auc" in page.locator("#model-current table").inner_text()
    page.locator("#model-plots img").first.wait_for()
    published = requests.get(web_cloud.api_url + "/model-report/index.json", timeout=10).json()["plots"]
    assert page.locator("#model-plots img").count() == len(published) >= 4
    page.locator("#model-versions > *").first.wait_for()


def test_a_retrain_can_be_started_and_its_decision_seen(page, web_cloud, api_session, output_dir):
    page.click("#tab-data")
    probe = api_session.get(web_cloud.api_url + "/retrain/probe-job", timeout=10)
    routes_exist = probe.json().get("error") != "not_found"
    sent = []

    def small_job(route):  # the request the page sends, with the job's size cut down
        sent.append(route.request.post_data_json)
        route.continue_(post_data=json.dumps(SMALL_JOB))

    page.route(re.compile(r".*/retrain\?.*"), small_job)
    page.click("#retrain-start")
    if not routes_exist:
        notice = page.locator("#retrain-job .notice")
        notice.wait_for()
        assert "not available" in notice.inner_text()
        page.locator("#dataset .notice").wait_for()
        page.screenshot(path=str(output_dir / "data-desktop.png"), full_page=True)
        pytest.skip("POST /retrain and GET /retrain/{job} are not on this branch (issue 8): "
                    "checked only the page's clear 'not available' state")
    page.locator("#retrain-decision").wait_for(timeout=240_000)
    page.unroute(re.compile(r".*/retrain\?.*"))
    assert sent == [{}]  # the page asked for a job with the default hyperparameters
    assert page.locator("[data-job-status]").inner_text() in ("Completed", "Failed", "Stopped")
    page.screenshot(path=str(output_dir / "data-desktop.png"), full_page=True)


def test_monitoring_shows_the_emitted_metrics_and_queues(page, output_dir):
    page.click("#tab-monitor")
    tiles = page.locator("#monitor-status .tile")
    tiles.first.wait_for()
    text = page.locator("#monitor-status").inner_text()
    assert "queue depth" in text and "dead-letter depth" in text and "screening p95 (ms)" in text
    p95 = page.locator("#monitor-status .tile", has_text="screening p95").locator(".value").inner_text()
    assert float(p95) > 0  # from the ScreeningLatency values the functions emitted
    assert page.locator("#monitor-status .tile", has_text="dead-letter depth").locator(".value").inner_text() == "0"
    page.locator("#monitor-chart canvas").wait_for()  # uPlot drew the per-minute series
    assert "EMF metric lines" in page.locator("#monitor-source").inner_text()
    page.locator("#monitor-rejections table").wait_for()
    assert "unsupported_content_type" in page.locator("#monitor-rejections").inner_text()
    page.screenshot(path=str(output_dir / "monitoring-desktop.png"), full_page=True)


def test_cataract_shows_severity_and_a_full_field_glaucoma_screen_its_crop_box(page, output_dir):
    page.click("#tab-screen")
    page.locator("#screen-condition option[value=cataract]").wait_for(state="attached")  # GET /models answered 200
    assert page.locator("#screen-condition").input_value() == "glaucoma"  # the default
    page.select_option("#screen-condition", "cataract")
    page.set_input_files("#file-input", str(CATARACT))
    cataract = page.locator(".result[data-status=ok][data-condition=cataract]", has_text=CATARACT.name).first
    cataract.wait_for()
    assert cataract.get_attribute("data-label") in ("cataract", "normal")
    assert "P(cataract)" in cataract.locator("dl.facts").inner_text()
    severity = float(cataract.locator("[data-field=severity]").inner_text())
    assert 0.0 <= severity <= 10.0
    assert cataract.locator(".crop-box").count() == 0  # cataract screens the whole field
    page.select_option("#screen-condition", "glaucoma")
    page.set_input_files("#file-input", str(CATARACT))
    glaucoma = page.locator(".result[data-status=ok][data-condition=glaucoma]", has_text=CATARACT.name).first
    glaucoma.wait_for()
    assert glaucoma.locator("[data-field=severity]").count() == 0
    box = glaucoma.locator(".crop-box")
    box.wait_for()
    left, top, right, bottom = (int(v) for v in glaucoma.locator("[data-field=crop-box]").inner_text().split(", "))
    assert 0 <= left < right and 0 <= top < bottom
    # The outline sits inside the drawn photograph, scaled from the upload's pixels to the canvas.
    canvas_box = glaucoma.locator("canvas").bounding_box()
    outline = box.bounding_box()
    assert canvas_box["x"] - 1 <= outline["x"] and outline["x"] + outline["width"] <= canvas_box["x"] + canvas_box["width"] + 1
    assert 0.05 < outline["width"] / canvas_box["width"] < 0.9
    page.screenshot(path=str(output_dir / "screen-crop-box.png"), full_page=True)


def test_phone_width_and_keyboard(page, output_dir):
    page.set_viewport_size(PHONE)
    page.focus("#tab-monitor")
    page.keyboard.press("Home")
    assert page.evaluate("document.activeElement.id") == "tab-screen"
    assert page.locator("#panel-screen").is_visible()
    page.keyboard.press("ArrowRight")
    assert page.locator("#panel-history").is_visible()
    page.keyboard.press("ArrowLeft")
    page.focus("#file-input")  # the picker is reachable by keyboard; its label shows the focus
    outline = page.locator("label[for=file-input]").evaluate("el => getComputedStyle(el).outlineStyle")
    assert outline == "solid"
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 1  # nothing wider than the phone
    card = page.locator(".result[data-status=ok]").first
    assert card.locator("canvas").bounding_box()["width"] <= PHONE["width"]
    page.screenshot(path=str(output_dir / "screen-phone.png"), full_page=True)
    page.set_viewport_size(DESKTOP)


def test_no_console_errors(page):
    assert unexpected(page.console_problems) == []


def black_png() -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (300, 300)).save(buffer, "PNG")
    return buffer.getvalue()


def wait_until(condition, timeout_s: float = 15.0) -> None:
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


def test_the_page_is_not_served_behind_the_key(web_cloud):
    assert requests.get(web_cloud.api_url + "/", timeout=10).status_code == 200
