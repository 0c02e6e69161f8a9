"""A user's whole journey through nginx, against the running suite, with real email."""
import io
import json

import pytest
import requests
from PIL import Image
from werkzeug.http import parse_options_header

from tests.conftest import CORPUS_DIR
from tests.support.processes import wait_for
from tests.support.clients import ImagesClient

pytestmark = pytest.mark.e2e

PHOTO = CORPUS_DIR / "good-images" / "Landscape_1.jpg"


@pytest.fixture
def suite(suite_on_each_store):
    """Every test here runs on both stores (tests/e2e/conftest.py)."""
    return suite_on_each_store


def test_signup_login_upload_process_download_and_emails(suite, new_account):
    user, token = new_account("Ada")
    welcome = suite.mailbox.wait_for(user["email"])[0]
    assert "welcome" in welcome["Subject"].lower()

    me = requests.get(f"{suite.url}/api/users/me", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert me.status_code == 200 and me.json()["user"] == user

    images = ImagesClient(suite.url, token)
    operations = [{"type": "resize", "width": 320, "height": 320, "fit": "cover"}, {"type": "convert", "format": "webp"}]
    accepted = images.upload(PHOTO, operations, filename="Landscape 1.jpg")
    assert accepted.status_code == 202, accepted.text
    image_id = accepted.json()["image"]["id"]

    status = images.wait_until_done(image_id, timeout=60)
    assert status["status"] == "completed", status

    download = images.download(image_id)
    assert download.status_code == 200
    assert download.headers["Content-Type"] == "image/webp"
    assert "Landscape 1.webp" in download.headers["Content-Disposition"]
    with Image.open(io.BytesIO(download.content)) as output:
        assert (output.format, output.size) == ("WEBP", (320, 320))

    ready = suite.mailbox.wait_for(user["email"], count=2)
    assert any("ready" in message["Subject"].lower() for message in ready)

    _, stranger_token = new_account("Mallory")
    stranger = ImagesClient(suite.url, stranger_token)
    for response in (stranger.get(image_id), stranger.status(image_id, wait=0), stranger.download(image_id)):
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"


def test_a_failed_image_tells_its_owner(suite, new_account):
    user, token = new_account("Barbara")
    images = ImagesClient(suite.url, token)
    crop = [{"type": "crop", "left": 5000, "top": 0, "width": 10, "height": 10}]
    image_id = images.upload(PHOTO, crop).json()["image"]["id"]
    status = images.wait_until_done(image_id)
    assert status["status"] == "failed" and status["error"]["code"] == "invalid_crop"
    messages = suite.mailbox.wait_for(user["email"], count=2)
    assert any("could not" in message["Subject"].lower() for message in messages)


def test_the_gateway_refuses_oversized_bodies_itself_with_json(suite, new_account):
    _, token = new_account()
    too_big = b"\0" * (int(26214400) + 2 * 1024 * 1024)
    response = requests.post(
        f"{suite.url}/api/images/upload",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/octet-stream"},
        data=too_big,
        timeout=60,
    )
    assert response.status_code == 413
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json()["error"]["code"] == "too_large"


def test_gateway_errors_and_documents_are_json(suite):
    missing = requests.get(f"{suite.url}/no/such/path", timeout=10)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert "nginx/" not in missing.headers.get("Server", "")
    unauthorized = requests.get(f"{suite.url}/api/images", timeout=10)
    assert unauthorized.status_code == 401 and unauthorized.json()["error"]["code"] == "unauthorized"
    spec = requests.get(f"{suite.url}/api/openapi.yaml", timeout=10)
    assert spec.status_code == 200 and spec.text.startswith("openapi: 3.1")
    health = requests.get(f"{suite.url}/healthz", timeout=10)
    assert health.status_code == 200
    assert health.json()["failing"] == []
    assert set(health.json()["services"]) == {"user_service", "upload_service", "process_service", "notification_service"}


def test_a_client_traceparent_reaches_the_logs(suite, new_account):
    _, token = new_account()
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    response = requests.get(
        f"{suite.url}/api/images",
        headers={"Authorization": f"Bearer {token}", "traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"},
        timeout=10,
    )
    assert response.status_code == 200
    # nginx writes its access log line once the response is out: give it a moment.
    wait_for(lambda: trace_id in open(suite.env["GATEWAY_ACCESS_LOG"]).read(), timeout=5, interval=0.05,
               message="the client's trace id is not in the gateway's access log")


def test_a_non_ascii_name_survives_the_download_with_a_readable_fallback(suite, new_account):
    """RFC 6266 through the real gateway: browsers take `filename*`, old clients the ASCII
    `filename`, which used to be ".png" (a hidden-file name) for "名前.png"."""
    _, token = new_account("Chiyo")
    images = ImagesClient(suite.url, token)
    accepted = images.upload(PHOTO, [{"type": "convert", "format": "png"}], filename="名前.jpg")
    assert accepted.status_code == 202, accepted.text
    image_id = accepted.json()["image"]["id"]
    assert images.wait_until_done(image_id, timeout=60)["status"] == "completed"

    disposition = images.download(image_id).headers["Content-Disposition"]
    kind, params = parse_options_header(disposition)
    assert kind == "attachment"
    assert params["filename"] == "名前.png"  # werkzeug, like browsers, prefers filename*
    assert 'filename="image.png"' in disposition, disposition


def test_presets_are_listed_through_the_gateway(suite, new_account):
    _, token = new_account("Pia")
    response = ImagesClient(suite.url, token).presets()
    assert response.status_code == 200, response.text
    presets = response.json()["presets"]
    assert presets["thumbnail"] == [{"type": "resize", "width": 256, "height": 256, "fit": "cover"}]
    assert presets["preview"] == [{"type": "resize", "width": 1280, "height": 1280, "fit": "inside"}]
    assert requests.get(f"{suite.url}/api/presets", timeout=10).json()["error"]["code"] == "unauthorized"


def test_operations_variants_and_a_preset_each_download_through_the_gateway(suite, new_account):
    user, token = new_account("Grace")
    images = ImagesClient(suite.url, token)
    variants = {"thumb": "thumbnail", "big": [{"type": "resize", "width": 400}, {"type": "convert", "format": "webp"}]}
    accepted = images.upload(PHOTO, [{"type": "convert", "format": "png"}], variants=json.dumps(variants))
    assert accepted.status_code == 202, accepted.text
    image_id = accepted.json()["image"]["id"]
    assert images.wait_until_done(image_id, timeout=60)["status"] == "completed"
    image = images.get(image_id).json()["image"]
    assert list(image["variants"]) == ["default", "thumb", "big"]
    assert image["output"]["format"] == "png"

    expected = {"default": ("PNG", "image/png"), "thumb": ("JPEG", "image/jpeg"), "big": ("WEBP", "image/webp")}
    for variant, (pillow_format, content_type) in expected.items():
        download = images.download(image_id, variant=variant)
        assert download.status_code == 200, (variant, download.text)
        assert download.headers["Content-Type"] == content_type
        described = image["variants"][variant]
        assert len(download.content) == described["size_bytes"]
        with Image.open(io.BytesIO(download.content)) as output:
            assert output.format == pillow_format
            assert output.size == (described["width"], described["height"])
    assert image["variants"]["thumb"]["width"] == image["variants"]["thumb"]["height"] == 256
    assert image["variants"]["big"]["width"] == 400
    assert images.download(image_id).content == images.download(image_id, variant="default").content
    unknown = images.download(image_id, variant="huge")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"

    ready = [m for m in suite.mailbox.wait_for(user["email"], count=2) if "ready" in m["Subject"].lower()]
    assert "Variants: default, thumb, big." in ready[0].get_body(("plain",)).get_content()
