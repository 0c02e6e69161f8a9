"""Signed media URLs at the gateway alone (gateway/media.js, nginx.conf /media/): a real nginx, a
file in its folder store, URLs minted by shared/media_urls.py. No service runs: none is asked."""
import base64
import os
import time
import uuid

import pytest
import requests

from shared.media_urls import mint, verify
from tests.unit.test_nginx_conf import gateway_environment, needs_envsubst, start_nginx, stop_nginx

KEY_A = "a" * 20 + base64.urlsafe_b64encode(os.urandom(24)).decode().rstrip("=")
KEY_B = "b" * 20 + base64.urlsafe_b64encode(os.urandom(24)).decode().rstrip("=")
OUTPUT = bytes(range(256)) * 400  # 100 kB, not an image: the gateway does not look inside


@pytest.fixture
def gateway_with_keys(tmp_path):
    """start(current, previous) -> base URL of an nginx rendered with those keys."""
    processes = []
    name = f"outputs/{uuid.uuid4()}.default.webp"
    (tmp_path / "storage" / "outputs").mkdir(parents=True)
    (tmp_path / "storage" / name).write_bytes(OUTPUT)

    def start(current, previous=""):
        for process in processes:
            stop_nginx(process)
        processes.clear()
        environment = gateway_environment(tmp_path, MEDIA_SIGNING_KEY=current, MEDIA_SIGNING_KEYS_PREVIOUS=previous)
        processes.append(start_nginx(tmp_path, environment))
        return f"http://127.0.0.1:{environment['GATEWAY_PORT']}"

    start.name = name
    start.storage = tmp_path / "storage"
    yield start
    for process in processes:
        stop_nginx(process)


def assert_json_error(response, status, code):
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == code


@needs_envsubst
def test_a_signed_url_is_served_with_every_caching_header(gateway_with_keys):
    base = gateway_with_keys(KEY_A)
    url = mint(KEY_A, gateway_with_keys.name, "名前 résumé.webp", time.time() + 600)

    response = requests.get(base + url, timeout=10)
    assert response.status_code == 200, response.text
    assert response.content == OUTPUT
    headers = response.headers
    assert headers["Content-Type"] == "image/webp"
    assert headers["Content-Length"] == str(len(OUTPUT))
    assert headers["ETag"].startswith('"')  # strong: no W/
    assert headers["Last-Modified"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Cross-Origin-Resource-Policy"] == "cross-origin"  # for other sites' <img>
    kind, _, max_age = headers["Cache-Control"].partition(", max-age=")
    assert kind == "public" and 590 <= int(max_age) <= 600
    assert headers["Content-Disposition"] == (
        "inline; filename=\"resume.webp\"; filename*=UTF-8''%E5%90%8D%E5%89%8D%20r%C3%A9sum%C3%A9.webp")

    head = requests.head(base + url, timeout=10)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["ETag"] == headers["ETag"] and head.headers["Content-Length"] == str(len(OUTPUT))

    again = requests.get(base + url, headers={"If-None-Match": headers["ETag"]}, timeout=10)
    assert again.status_code == 304 and again.content == b""

    part = requests.get(base + url, headers={"Range": "bytes=1000-1999"}, timeout=10)
    assert part.status_code == 206
    assert part.content == OUTPUT[1000:2000]
    assert part.headers["Content-Range"] == f"bytes 1000-1999/{len(OUTPUT)}"


@needs_envsubst
def test_any_change_to_a_signed_url_is_refused(gateway_with_keys):
    base = gateway_with_keys(KEY_A)
    url = mint(KEY_A, gateway_with_keys.name, "photo.webp", time.time() + 600)
    assert requests.get(base + url, timeout=10).status_code == 200

    path, _, query = url.partition("?")
    tampered = {
        "no signature": url.rsplit("&signature=", 1)[0],
        "empty signature": url.rsplit("=", 1)[0] + "=",
        "another file name": url.replace("/photo.webp?", "/other.webp?"),
        "a later expiry": url.replace("expires=", "expires=9"),
        "another fallback": url.replace("ascii=photo.webp", "ascii=x.webp"),
        "a parameter added": path + "?" + query.replace("&signature=", "&x=1&signature="),
        "one signature character": url[:-1] + ("A" if url[-1] != "A" else "B"),
        "signed by another key": mint(KEY_B, gateway_with_keys.name, "photo.webp", time.time() + 600),
        "no query at all": path,
        "not even the shape": "/media/whatever",
    }
    for what, changed in tampered.items():
        response = requests.get(base + changed, timeout=10)
        assert response.status_code == 403, f"{what}: {response.status_code}"
        assert_json_error(response, 403, "invalid_signature")
        assert verify([KEY_A], changed) == "invalid_signature", what


@needs_envsubst
def test_an_expired_link_says_so_and_a_missing_output_is_not_found(gateway_with_keys):
    base = gateway_with_keys(KEY_A)
    expired = mint(KEY_A, gateway_with_keys.name, "photo.webp", time.time() - 1)
    assert_json_error(requests.get(base + expired, timeout=10), 403, "link_expired")
    assert verify([KEY_A], expired) == "link_expired"

    url = mint(KEY_A, gateway_with_keys.name, "photo.webp", time.time() + 600)
    (gateway_with_keys.storage / gateway_with_keys.name).unlink()  # the image was deleted
    assert_json_error(requests.get(base + url, timeout=10), 404, "not_found")


@needs_envsubst
def test_a_rotated_key_keeps_old_links_working_until_it_is_dropped(gateway_with_keys):
    old_link = mint(KEY_A, gateway_with_keys.name, "photo.webp", time.time() + 600)

    base = gateway_with_keys(KEY_B, previous=KEY_A)
    assert requests.get(base + old_link, timeout=10).status_code == 200
    new_link = mint(KEY_B, gateway_with_keys.name, "photo.webp", time.time() + 600)
    assert requests.get(base + new_link, timeout=10).status_code == 200

    base = gateway_with_keys(KEY_B)
    assert_json_error(requests.get(base + old_link, timeout=10), 403, "invalid_signature")
    assert requests.get(base + new_link, timeout=10).status_code == 200


@needs_envsubst
def test_only_get_and_head_are_answered(gateway_with_keys):
    base = gateway_with_keys(KEY_A)
    url = mint(KEY_A, gateway_with_keys.name, "photo.webp", time.time() + 600)
    assert requests.delete(base + url, timeout=10).status_code == 405


# -- "auto" outputs: one URL, the format chosen by Accept ------------------------------------------

# What browsers send for an <img> (their defaults, 2024-2026), and clients that name no image format.
CHROME = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"
FIREFOX = "image/avif,image/webp,image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5"
SAFARI_15 = "image/webp,image/png,image/svg+xml,image/*;q=0.8,video/*;q=0.8,*/*;q=0.5"
CURL = "*/*"


@pytest.fixture
def auto_output(gateway_with_keys):
    """One "auto" output stored in its three formats (distinct bytes, AVIF smallest), as
    process_service stores them: `<id>.<variant>.<ext>` side by side."""
    stem = f"outputs/{uuid.uuid4()}.thumb"
    bodies = {"avif": OUTPUT[:1000], "webp": OUTPUT[:2000], "jpg": OUTPUT[:3000]}
    for extension, body in bodies.items():
        (gateway_with_keys.storage / f"{stem}.{extension}").write_bytes(body)
    return f"{stem}.jpg", bodies


def negotiated(base, url, accept, **headers):
    return requests.get(base + url, headers={**({"Accept": accept} if accept is not None else {}), **headers}, timeout=10)


@needs_envsubst
def test_an_auto_url_answers_each_client_with_the_smallest_format_it_accepts(gateway_with_keys, auto_output):
    base = gateway_with_keys(KEY_A)
    fallback, bodies = auto_output
    url = mint(KEY_A, fallback, "名前.jpg", time.time() + 600, formats=["avif", "webp", "jpeg"])

    expected = {CHROME: "avif", FIREFOX: "avif", SAFARI_15: "webp", CURL: "jpg", None: "jpg",
                "image/avif;q=0, image/webp": "webp", "IMAGE/WEBP ; q=0.5": "webp", "image/webp;q=0": "jpg"}
    etags = {}
    for accept, extension in expected.items():
        response = negotiated(base, url, accept)
        assert response.status_code == 200, (accept, response.text)
        assert response.content == bodies[extension], accept
        assert response.headers["Content-Type"] == {"avif": "image/avif", "webp": "image/webp", "jpg": "image/jpeg"}[extension]
        assert response.headers["Vary"] == "Accept"
        assert response.headers["Content-Disposition"] == (
            f"inline; filename=\"image.{extension}\"; filename*=UTF-8''%E5%90%8D%E5%89%8D.{extension}")
        etags.setdefault(extension, response.headers["ETag"])
        assert etags[extension] == response.headers["ETag"]
    assert len(set(etags.values())) == 3  # one strong ETag per representation

    # A cached WebP's ETag revalidates the WebP, not the AVIF the next browser gets.
    assert negotiated(base, url, SAFARI_15, **{"If-None-Match": etags["webp"]}).status_code == 304
    assert negotiated(base, url, CHROME, **{"If-None-Match": etags["webp"]}).status_code == 200
    head = requests.head(base + url, headers={"Accept": CHROME}, timeout=10)
    assert head.headers["Content-Length"] == str(len(bodies["avif"])) and head.headers["Vary"] == "Accept"
    part = negotiated(base, url, SAFARI_15, Range="bytes=10-19")
    assert part.status_code == 206 and part.content == bodies["webp"][10:20]


@needs_envsubst
def test_the_fallback_wins_when_it_is_the_smallest(gateway_with_keys, auto_output):
    base = gateway_with_keys(KEY_A)
    fallback, bodies = auto_output
    url = mint(KEY_A, fallback, "photo.jpg", time.time() + 600, formats=["jpeg", "avif", "webp"])
    assert negotiated(base, url, CHROME).content == bodies["jpg"]


@needs_envsubst
def test_the_format_list_is_signed_and_plain_urls_do_not_vary(gateway_with_keys, auto_output):
    base = gateway_with_keys(KEY_A)
    fallback, _ = auto_output
    url = mint(KEY_A, fallback, "photo.jpg", time.time() + 600, formats=["avif", "webp", "jpeg"])
    for changed in (url.replace("formats=avif,webp,jpg", "formats=webp,avif,jpg"),
                    url.replace("formats=avif,webp,jpg&", ""), url.replace("formats=avif,", "formats=../x,")):
        assert_json_error(negotiated(base, changed, CHROME), 403, "invalid_signature")

    plain = negotiated(base, mint(KEY_A, fallback, "photo.jpg", time.time() + 600), CHROME)
    assert plain.status_code == 200 and plain.headers["Content-Type"] == "image/jpeg"
    assert "Vary" not in plain.headers
