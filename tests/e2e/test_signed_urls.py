"""Signed media URLs through the whole suite (contract "Delivery"): minted by upload_service,
fetched from the gateway with no credential, on both stores."""
import json
import re
import time

import pytest
import requests

from tests.conftest import CORPUS_DIR
from tests.support.clients import ImagesClient

pytestmark = pytest.mark.e2e

PHOTO = CORPUS_DIR / "good-images" / "Landscape_1.jpg"


@pytest.fixture
def suite(suite_on_each_store):
    return suite_on_each_store


@pytest.fixture
def completed(suite, new_account):
    """(images client, image id) of a completed webp output named 'Été 名前.webp'."""
    _, token = new_account("Dora")
    images = ImagesClient(suite.url, token)
    accepted = images.upload(PHOTO, [{"type": "resize", "width": 300}, {"type": "convert", "format": "webp"}],
                             filename="Été 名前.jpg")
    assert accepted.status_code == 202, accepted.text
    image_id = accepted.json()["image"]["id"]
    assert images.wait_until_done(image_id, timeout=60)["status"] == "completed"
    return images, image_id


def mint(suite, images, image_id, **params):
    return requests.get(f"{suite.url}/api/images/{image_id}/url", headers=images.headers, params=params, timeout=10)


def test_the_output_url_serves_the_bytes_without_credentials(suite, completed):
    images, image_id = completed
    output = images.get(image_id).json()["image"]["output"]
    assert output["url"].startswith("/media/")

    signed = requests.get(suite.url + output["url"], timeout=10)  # no Authorization header
    assert signed.status_code == 200, signed.text
    assert signed.content == images.download(image_id).content
    assert signed.headers["Content-Type"] == "image/webp"
    assert signed.headers["Content-Disposition"].startswith('inline; filename="Ete.webp"; filename*=UTF-8\'\'')
    assert int(signed.headers["Cache-Control"].rpartition("=")[2]) <= 86400
    assert requests.get(suite.url + output["url"], headers={"If-None-Match": signed.headers["ETag"]},
                        timeout=10).status_code == 304
    part = requests.get(suite.url + output["url"], headers={"Range": "bytes=0-9"}, timeout=10)
    assert part.status_code == 206 and part.content == signed.content[:10]

    listed = images.list().json()["images"][0]["output"]["url"]
    assert requests.get(suite.url + listed, timeout=10).content == signed.content


def test_a_minted_url_expires_and_a_changed_one_is_refused(suite, completed):
    images, image_id = completed
    minted = mint(suite, images, image_id, ttl=2)
    assert minted.status_code == 200, minted.text
    body = minted.json()
    assert body["expires_at"].endswith("Z")
    assert requests.get(suite.url + body["url"], timeout=10).status_code == 200

    changed = body["url"].replace(image_id, image_id[:-1] + ("0" if image_id[-1] != "0" else "1"))
    refused = requests.get(suite.url + changed, timeout=10)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "invalid_signature"

    time.sleep(3)
    expired = requests.get(suite.url + body["url"], timeout=10)
    assert expired.status_code == 403 and expired.json()["error"]["code"] == "link_expired"


def test_minting_checks_its_parameters(suite, completed, new_account):
    images, image_id = completed
    for ttl in ("0", "604801", "x", "-5"):
        response = mint(suite, images, image_id, ttl=ttl)
        assert response.status_code == 400 and response.json()["error"]["code"] == "validation_error", ttl
    assert mint(suite, images, image_id, variant="nope").status_code == 404
    _, stranger = new_account("Eve")
    assert mint(suite, ImagesClient(suite.url, stranger), image_id).status_code == 404
    assert requests.get(f"{suite.url}/api/images/{image_id}/url", timeout=10).status_code == 401


def test_a_deleted_images_link_is_not_found_from_then_on(suite, completed):
    images, image_id = completed
    url = mint(suite, images, image_id).json()["url"]
    assert requests.get(suite.url + url, timeout=10).status_code == 200
    assert images.delete(image_id).status_code == 204
    gone = requests.get(suite.url + url, timeout=10)
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"


def test_the_ready_emails_link_opens_the_image_without_signing_in(suite, new_account):
    user, token = new_account("Fumiko")
    images = ImagesClient(suite.url, token)
    accepted = images.upload(PHOTO, [{"type": "resize", "width": 200}], filename="holiday.jpg")
    image_id = accepted.json()["image"]["id"]
    assert images.wait_until_done(image_id, timeout=60)["status"] == "completed"

    ready = [message for message in suite.mailbox.wait_for(user["email"], count=2)
             if "ready" in message["Subject"].lower()]
    assert len(ready) == 1
    text = ready[0].get_body(preferencelist=("plain",)).get_content()
    link = re.search(r"(https?://\S+/media/\S+)", text).group(1)
    assert link.startswith(suite.url + "/media/")
    assert "works for 7 days" in text

    opened = requests.get(link, timeout=10)  # a browser: no Authorization, no cookie
    assert opened.status_code == 200, opened.text
    assert opened.content == images.download(image_id).content
    assert opened.headers["Content-Disposition"].startswith("inline;")
    max_age = int(opened.headers["Cache-Control"].rpartition("=")[2])
    assert 86400 < max_age <= 7 * 86400  # EMAIL_LINK_TTL, not the API's MEDIA_URL_TTL


def test_each_variant_has_its_own_signed_url(suite, new_account):
    _, token = new_account("Grace")
    images = ImagesClient(suite.url, token)
    accepted = images.upload(PHOTO, filename="two.jpg", variants=json.dumps(
        {"thumb": "thumbnail", "small": [{"type": "resize", "width": 120}, {"type": "convert", "format": "png"}]}))
    assert accepted.status_code == 202, accepted.text
    image_id = accepted.json()["image"]["id"]
    assert images.wait_until_done(image_id, timeout=60)["status"] == "completed"

    variants = images.get(image_id).json()["image"]["variants"]
    assert list(variants) == ["thumb", "small"]
    for name, variant in variants.items():
        signed = requests.get(suite.url + variant["url"], timeout=10)
        assert signed.status_code == 200, (name, signed.text)
        download = requests.get(f"{suite.url}/api/images/{image_id}/download", params={"variant": name},
                                headers=images.headers, timeout=10)
        assert signed.content == download.content, name
        assert signed.headers["Content-Type"] == f"image/{variant['format']}"
        minted = mint(suite, images, image_id, variant=name).json()["url"]
        assert requests.get(suite.url + minted, timeout=10).content == download.content
    assert variants["thumb"]["width"] == variants["thumb"]["height"] == 256


# What browsers send for an <img>: Chrome and Firefox decode AVIF, Safari 15 WebP only; curl names none.
ACCEPT = {
    "chrome": "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8",
    "safari 15": "image/webp,image/png,image/svg+xml,image/*;q=0.8,video/*;q=0.8,*/*;q=0.5",
    "curl": "*/*",
}


def test_an_auto_variant_answers_each_browser_with_the_smallest_format_it_decodes(suite, new_account):
    _, token = new_account("Hedy")
    images = ImagesClient(suite.url, token)
    accepted = images.upload(PHOTO, filename="auto.jpg", variants=json.dumps(
        {"card": [{"type": "resize", "width": 400}, {"type": "convert", "format": "auto"}]}))
    assert accepted.status_code == 202, accepted.text
    image_id = accepted.json()["image"]["id"]
    assert images.wait_until_done(image_id, timeout=60)["status"] == "completed"

    card = images.get(image_id).json()["image"]["variants"]["card"]
    assert card["format"] == "jpeg"  # the fallback: the photo has no transparency
    sizes = {each["format"]: each["size_bytes"] for each in card["formats"]}
    assert list(sizes)[-1] == "jpeg" and "webp" in sizes and sizes["jpeg"] == card["size_bytes"]
    download = requests.get(f"{suite.url}/api/images/{image_id}/download", params={"variant": "card"},
                            headers=images.headers, timeout=10)
    assert download.headers["Content-Type"] == "image/jpeg"  # a download is the fallback

    def smallest(*candidates):
        return min((name for name in candidates if name in sizes), key=sizes.get)

    expected = {"chrome": smallest("avif", "webp", "jpeg"), "safari 15": smallest("webp", "jpeg"), "curl": "jpeg"}
    served = {}
    for client, accept in ACCEPT.items():
        response = requests.get(suite.url + card["url"], headers={"Accept": accept}, timeout=10)
        assert response.status_code == 200, (client, response.text)
        assert response.headers["Content-Type"] == f"image/{expected[client]}", client
        assert int(response.headers["Content-Length"]) == sizes[expected[client]], client
        assert response.headers["Vary"] == "Accept"
        served[client] = response
    assert served["curl"].content == download.content
    assert requests.get(suite.url + card["url"], headers={"Accept": ACCEPT["chrome"],
                        "If-None-Match": served["chrome"].headers["ETag"]}, timeout=10).status_code == 304

    assert images.delete(image_id).status_code == 204
    for accept in ACCEPT.values():  # every format is gone with the image
        assert requests.get(suite.url + card["url"], headers={"Accept": accept}, timeout=10).status_code == 404
    assert not [name for name in suite.storage_files() if image_id in name]
