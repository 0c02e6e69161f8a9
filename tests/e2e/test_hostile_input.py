"""Hostile input through the gateway: the shared corpus of good and malformed images (also under
misleading names and Content-Types), malformed and oversized multipart bodies, hostile operations,
hostile file names, bodies that lie about their length, stalled clients, hostile signup data.

Every refusal must be the contract's JSON error envelope (never a 5xx, never HTML), a refused upload
leaves nothing behind (no file, no row), and the suite keeps answering."""
import io
import json
import re
import socket
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from PIL import Image
from werkzeug.http import parse_options_header

from imaging.formats import AVIF_AVAILABLE
from tests.conftest import CORPUS_DIR
from tests.support.clients import ImagesClient, bearer, sign_up_and_log_in
from tests.support.hostile import (
    UNSAFE_IN_FILENAME,
    assert_clean_header_block,
    assert_error_envelope,
    gateway_address,
    http_request,
    multipart,
    raw_http,
    small_image,
)

pytestmark = pytest.mark.e2e

PHOTO = (CORPUS_DIR / "good-images" / "hopper.jpg").read_bytes()
REFUSAL_CODES = {413: "too_large", 415: "unsupported_media_type"}
FORMAT_BY_EXTENSION = {
    "jpg": "jpeg", "jpeg": "jpeg", "mpo": "jpeg", "png": "png", "apng": "png", "gif": "gif", "webp": "webp",
    "tif": "tiff", "tiff": "tiff", "bmp": "bmp", "avif": "avif",
}
MIME_BY_EXTENSION = {
    "jpg": "image/jpeg", "jpeg": "image/jpeg", "mpo": "image/jpeg", "png": "image/png", "apng": "image/apng",
    "gif": "image/gif", "webp": "image/webp", "tif": "image/tiff", "tiff": "image/tiff", "bmp": "image/bmp",
    "avif": "image/avif", "eps": "application/postscript", "psd": "image/vnd.adobe.photoshop",
    "dds": "image/vnd-ms.dds",
}


@pytest.fixture
def suite(suite_on_each_store):
    """Every test here runs on both stores (tests/e2e/conftest.py)."""
    return suite_on_each_store


# -- the corpus -----------------------------------------------------------------------------------


class CorpusFile:
    def __init__(self, folder, entry):
        self.folder = folder
        self.name = entry["file"]
        self.path = CORPUS_DIR / folder / entry["file"]
        self.expected = entry["expected"]
        self.extension = self.name.rsplit(".", 1)[-1].lower()
        self.statuses, self.may_fail = expected_outcome(self.expected)
        if self.extension == "avif" and not AVIF_AVAILABLE:
            self.statuses = {415}  # "processed where Pillow has AVIF": anything else is not an accepted format

    @property
    def accepted(self):
        return 202 in self.statuses

    @property
    def refused_only(self):
        return not self.accepted

    def variants(self):
        """(file name, Content-Type) it is sent under: its own, then misleading ones."""
        honest = (self.name, MIME_BY_EXTENSION.get(self.extension, "application/octet-stream"))
        if self.extension in ("png", "apng"):
            misleading = ("x.jpg", "image/jpeg")
        else:
            misleading = ("photo.png", "image/png")
        variants = [honest, misleading]
        if self.refused_only:
            variants.append(("blob", "application/octet-stream"))
        return variants

    def __repr__(self):
        return f"{self.folder}/{self.name}"


def expected_outcome(text):
    """The statuses an `expected` text allows, and whether a final `failed` is acceptable.

    "413 too_large", "415 (or 413)", "202 or a clean 415/'failed'", "processed" (no code: accepted).
    A code after "never" (or in "must not become a 500") is what must NOT happen."""
    cleaned = re.sub(r"(never|not become) (a )?\d{3}", "", text)
    statuses = {int(code) for code in re.findall(r"\b(202|413|415)\b", cleaned)}
    return statuses or {202}, "'failed'" in text


def load_corpus():
    files = []
    for folder in ("good-images", "bad-images"):
        for entry in json.loads((CORPUS_DIR / folder / "index.json").read_text()):
            files.append(CorpusFile(folder, entry))
    return files


CORPUS = load_corpus()


def test_the_corpus_expectations_are_understood():
    """Guards the parser above: every entry has a known outcome, and the corpus is what we think."""
    by_name = {corpus_file.name: corpus_file for corpus_file in CORPUS}
    assert len(CORPUS) >= 60
    assert by_name["decompression_bomb.gif"].statuses == {413}
    assert by_name["bmp_b_badwidth.bmp"].statuses == {413, 415}
    assert by_name["png_decompression_dos.png"].statuses == {413, 415}
    assert by_name["crash-2020-10-test.tif"].statuses == {415}
    assert by_name["decompression_bomb_extents.gif"].statuses == {202, 413}
    assert by_name["hopper.Lab.tif"].statuses == {202, 415} and by_name["hopper.Lab.tif"].may_fail
    assert by_name["10ct_32bit_128.tiff"].statuses == {202, 415} and not by_name["10ct_32bit_128.tiff"].may_fail
    assert by_name["Landscape_1.jpg"].statuses == {202}
    assert all(corpus_file.path.is_file() for corpus_file in CORPUS)


def _list_all(images):
    found, cursor = [], None
    while True:
        params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        response = images.list(**params)
        assert response.status_code == 200, response.text
        found += response.json()["images"]
        cursor = response.json()["next_cursor"]
        if not cursor:
            return found


def _new_files(before, after, in_flight_ids, accepted_ids):
    """Files that appeared under storage and are not explained by an accepted upload of this test
    (or the output of an image a previous test left in flight)."""
    unexplained = []
    for relative in sorted(after - before):
        folder, _, name = relative.partition("/")
        stem = name.split(".", 1)[0]
        if folder == "originals" and stem in accepted_ids:
            continue
        if folder == "outputs" and (stem in accepted_ids or stem in in_flight_ids):
            continue
        unexplained.append(relative)
    return unexplained


def _original_ids(files):
    return {relative.split("/", 1)[1] for relative in files if relative.startswith("originals/")}


def test_corpus_files_that_must_be_refused_are_refused_and_leave_nothing_behind(suite):
    _, token = sign_up_and_log_in(suite.url, "Refused")
    images = ImagesClient(suite.url, token)
    before = suite.storage_files()
    problems = []
    for corpus_file in (f for f in CORPUS if f.refused_only):
        content = corpus_file.path.read_bytes()
        for filename, content_type in corpus_file.variants():
            label = f"{corpus_file} sent as {filename!r} ({content_type})"
            response = images.upload(content, filename=filename, content_type=content_type)
            try:
                assert_error_envelope(
                    response,
                    status=corpus_file.statuses,
                    code={REFUSAL_CODES[status] for status in corpus_file.statuses},
                )
            except AssertionError as exc:
                problems.append(f"{label}: expected {corpus_file.expected!r}: {exc}")
            # The next request is answered, and no row was made.
            listing = images.list()
            if listing.status_code != 200 or listing.json()["images"]:
                problems.append(f"after {label}: the list answered {listing.status_code} {listing.text[:300]}")
    after = suite.storage_files()
    leftovers = _new_files(before, after, _original_ids(before), accepted_ids=set())
    assert not problems, "\n".join(problems)
    assert not leftovers, f"refused uploads left files behind: {leftovers}"
    assert _list_all(images) == []


def test_corpus_files_that_may_be_accepted_are_processed_whatever_their_name(suite):
    _, token = sign_up_and_log_in(suite.url, "Accepted")
    images = ImagesClient(suite.url, token)
    before = suite.storage_files()
    problems, accepted = [], {}  # id -> (corpus file, label)
    for corpus_file in (f for f in CORPUS if f.accepted):
        content = corpus_file.path.read_bytes()
        for filename, content_type in corpus_file.variants():
            label = f"{corpus_file} sent as {filename!r} ({content_type})"
            response = images.upload(content, filename=filename, content_type=content_type)
            if response.status_code == 202:
                image = response.json()["image"]
                accepted[image["id"]] = (corpus_file, label)
                if image["status"] != "queued":
                    problems.append(f"{label}: the 202 says status {image['status']!r}; the contract says 'queued'")
                if image["original_filename"] != filename:
                    problems.append(f"{label}: stored as {image['original_filename']!r}")
                if image["format"] != FORMAT_BY_EXTENSION[corpus_file.extension]:
                    problems.append(f"{label}: recognised as {image['format']!r}, not by its content")
                continue
            try:
                assert_error_envelope(
                    response,
                    status=corpus_file.statuses - {202},
                    code={REFUSAL_CODES[status] for status in corpus_file.statuses - {202}},
                )
            except AssertionError as exc:
                problems.append(f"{label}: expected {corpus_file.expected!r}: {exc}")

    for image_id, (corpus_file, label) in accepted.items():
        status = images.status(image_id, wait=60)
        if status.status_code != 200:
            problems.append(f"{label}: status answered {status.status_code} {status.text[:300]}")
            continue
        body = status.json()
        allowed = {"completed", "failed"} if corpus_file.may_fail else {"completed"}
        if body["status"] not in allowed:
            problems.append(f"{label}: ended {body['status']!r} (allowed: {sorted(allowed)}): {body}")
            continue
        if body["status"] == "failed":
            if not (isinstance(body.get("error"), dict) and body["error"].get("code")):
                problems.append(f"{label}: failed without an error code: {body}")
            continue
        output = body["output"]
        if corpus_file.name == "decompression_bomb_extents.gif" and (output["width"], output["height"]) != (100, 100):
            problems.append(f"{label}: only the first frame (100x100) counts, got {output}")
        download = images.download(image_id)
        if download.status_code != 200:
            problems.append(f"{label}: download answered {download.status_code} {download.text[:300]}")
            continue
        if download.headers.get("Content-Type") != MIME_BY_EXTENSION.get(
            {"jpeg": "jpg"}.get(output["format"], output["format"])
        ):
            problems.append(f"{label}: downloaded as {download.headers.get('Content-Type')} for {output}")
        with Image.open(io.BytesIO(download.content)) as decoded:
            if decoded.size != (output["width"], output["height"]):
                problems.append(f"{label}: the output is {decoded.size}, the API says {output}")

    assert not problems, "\n".join(problems)
    listed = {image["id"] for image in _list_all(images)}
    assert listed == set(accepted), "the rows are exactly the accepted uploads"
    after = suite.storage_files()
    leftovers = _new_files(before, after, _original_ids(before), accepted_ids=set(accepted))
    assert not leftovers, f"refused uploads left files behind: {leftovers}"
    assert {f"originals/{image_id}" for image_id in accepted} <= after


# -- malformed multipart ------------------------------------------------------------------------


@pytest.fixture
def uploader(suite):
    """A fresh account whose every upload must be refused: nothing may be stored for it."""
    _, token = sign_up_and_log_in(suite.url, "Mallory")
    images = ImagesClient(suite.url, token)
    before = suite.storage_files()
    yield images
    assert images.list().json()["images"] == [], "a refused upload left a row behind"
    leftovers = _new_files(before, suite.storage_files(), _original_ids(before), accepted_ids=set())
    assert not leftovers, f"a refused upload left files behind: {leftovers}"


def _post(images, body, content_type, extra_headers=None):
    return requests.post(
        f"{images.base_url}/api/images/upload",
        headers={**images.headers, "Content-Type": content_type, **(extra_headers or {})},
        data=body,
        timeout=60,
    )


def _still_answering(suite):
    health = requests.get(f"{suite.url}/healthz", timeout=15)
    assert health.status_code == 200, health.text
    return health


MISSING_FILE_BODIES = {
    "only operations": [("operations", None, None, b"[]")],
    "file under another field": [("file", "a.jpg", "image/jpeg", PHOTO)],
    "image as a text field": [("image", None, None, PHOTO)],
    "no parts at all": [],
}


@pytest.mark.parametrize("case", sorted(MISSING_FILE_BODIES))
def test_an_upload_without_the_file_is_a_validation_error(suite, uploader, case):
    body, content_type = multipart(MISSING_FILE_BODIES[case])
    assert_error_envelope(_post(uploader, body, content_type), status=400, code="validation_error")


@pytest.mark.parametrize(
    "body, content_type",
    [
        (b"", "multipart/form-data; boundary=nothing"),
        (b"--x\r\nnot a part", "multipart/form-data; boundary=x"),
        (
            b'--x\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n\r\n' + PHOTO,
            "multipart/form-data; boundary=x",
        ),
        (PHOTO, "multipart/form-data"),
        (PHOTO, "image/jpeg"),
        (b'{"image": "aGVsbG8="}', "application/json"),
        (PHOTO, "application/x-www-form-urlencoded"),
    ],
    ids=["empty", "garbage", "unterminated", "no-boundary", "bare-jpeg", "json", "urlencoded"],
)
def test_a_body_that_is_not_a_proper_multipart_upload_is_refused(suite, uploader, body, content_type):
    assert_error_envelope(_post(uploader, body, content_type), status={400, 415})


def test_two_files_are_a_validation_error(suite, uploader):
    body, content_type = multipart([("image", "a.jpg", "image/jpeg", PHOTO), ("image", "b.jpg", "image/jpeg", PHOTO)])
    assert_error_envelope(_post(uploader, body, content_type), status=400, code="validation_error")


@pytest.mark.parametrize("image_first", [True, False], ids=["image-first", "image-last"])
def test_thousands_of_parts_are_refused_with_json(suite, uploader, image_first):
    fields = [(f"field{index}", None, None, b"x") for index in range(5000)]
    image = [("image", "a.jpg", "image/jpeg", PHOTO)]
    body, content_type = multipart(image + fields if image_first else fields + image)
    assert_error_envelope(_post(uploader, body, content_type))
    _still_answering(suite)


@pytest.mark.parametrize(
    "operations",
    [
        b"[" + b" " * (2 * 1024 * 1024) + b"]",
        json.dumps([{"type": "watermark", "text": "x" * (2 * 1024 * 1024)}]).encode(),
    ],
    ids=["2MB-of-spaces", "2MB-watermark-text"],
)
def test_a_huge_operations_field_is_refused_with_json(suite, uploader, operations):
    body, content_type = multipart([("image", "a.jpg", "image/jpeg", PHOTO), ("operations", None, None, operations)])
    assert_error_envelope(_post(uploader, body, content_type))
    _still_answering(suite)


INVALID_JSON = {
    "truncated": b'[{"type": "resize", "width": 10',
    "single-quotes": b"[{'type': 'grayscale'}]",
    "trailing-comma": b'[{"type": "grayscale"},]',
    "not-utf8": b'\xff\xfe[{"type": "grayscale"}]',
    "python-literal": b"[{'type': 'blur', 'radius': 1.0}]",
    "huge-integer": b'[{"type": "resize", "width": ' + b"9" * 5000 + b"}]",
    "bare-word": b"grayscale",
}


@pytest.mark.parametrize("operations", list(INVALID_JSON.values()), ids=list(INVALID_JSON))
def test_operations_that_are_not_json_are_invalid_operations(suite, uploader, operations):
    body, content_type = multipart([("image", "a.jpg", "image/jpeg", PHOTO), ("operations", None, None, operations)])
    assert_error_envelope(_post(uploader, body, content_type), status=400, code="invalid_operations")


DEEP = 20000
WRONG_TYPES = {
    "object-not-array": {"type": "grayscale"},
    "string-not-array": "grayscale",
    "number-not-array": 42,
    "boolean-not-array": True,
    "nested-array": [[{"type": "grayscale"}]],
    "null-item": [None],
    "string-item": ["grayscale"],
    "type-is-array": [{"type": ["resize"]}],
    "type-is-object": [{"type": {"name": "resize"}}],
    "type-is-number": [{"type": 1}],
    "unknown-type": [{"type": "explode"}],
    "string-for-integer": [{"type": "resize", "width": "100"}],
    "string-for-number": [{"type": "blur", "radius": "2"}],
    "boolean-for-integer": [{"type": "resize", "width": True}],
    "boolean-for-number": [{"type": "compress", "quality": False}],
    "fraction-for-integer": [{"type": "resize", "width": 100.5}],
    "array-for-integer": [{"type": "resize", "width": [100]}],
    "object-for-number": [{"type": "rotate", "degrees": {"value": 90}}],
    "number-for-boolean": [{"type": "rotate", "degrees": 90, "expand": 1}],
    "string-for-boolean": [{"type": "rotate", "degrees": 90, "expand": "true"}],
    "number-for-string": [{"type": "watermark", "text": 123}],
    "null-for-required": [{"type": "crop", "left": None, "top": 0, "width": 1, "height": 1}],
    "negative": [{"type": "crop", "left": -1, "top": 0, "width": 1, "height": 1}],
    "out-of-range": [{"type": "resize", "width": 10001}],
    "huge-number": [{"type": "resize", "width": 1e300}],
    "empty-string": [{"type": "watermark", "text": ""}],
    "too-long-string": [{"type": "watermark", "text": "x" * 201}],
    "bad-enum": [{"type": "flip", "direction": "diagonal"}],
    "enum-wrong-case": [{"type": "convert", "format": "JPEG"}],
    "bad-colour": [{"type": "rotate", "degrees": 45, "background": "#fff\r\nX-Injected: 1"}],
    "unknown-field": [{"type": "grayscale", "strength": 1}],
    "missing-field": [{"type": "blur"}],
    "resize-without-sides": [{"type": "resize", "fit": "cover"}],
    "too-many": [{"type": "grayscale"}] * 21,
}
RAW_WRONG_TYPES = {
    "nan": b'[{"type": "blur", "radius": NaN}]',
    "infinity": b'[{"type": "rotate", "degrees": Infinity}]',
    "minus-infinity": b'[{"type": "sharpen", "amount": -Infinity}]',
    "overflowing-float": b'[{"type": "rotate", "degrees": 1e400}]',
    f"array-nested-{DEEP}-deep": b"[" * DEEP + b"]" * DEEP,
    f"value-nested-{DEEP}-deep": b'[{"type": "resize", "width": ' + b"[" * DEEP + b"]" * DEEP + b"}]",
    f"object-nested-{DEEP}-deep": b'[{"type": "grayscale", "x": ' + b'{"a":' * DEEP + b"1" + b"}" * DEEP + b"}]",
}


@pytest.mark.parametrize(
    "operations",
    [json.dumps(value).encode() for value in WRONG_TYPES.values()] + list(RAW_WRONG_TYPES.values()),
    ids=list(WRONG_TYPES) + list(RAW_WRONG_TYPES),
)
def test_operations_of_the_wrong_shape_are_invalid_operations(suite, uploader, operations):
    body, content_type = multipart([("image", "a.jpg", "image/jpeg", PHOTO), ("operations", None, None, operations)])
    error = assert_error_envelope(_post(uploader, body, content_type), status=400, code="invalid_operations")["error"]
    assert "reason" in error["details"], error


def test_operations_sent_as_a_file_part_are_not_silently_ignored(suite, new_account):
    """`curl -F operations=@ops.json` sends the operations as a file part. Either they are applied
    or the upload is refused: an image processed without the operations the client asked for is not
    what it asked for."""
    _, token = new_account("Curl")
    images = ImagesClient(suite.url, token)
    operations = json.dumps([{"type": "grayscale"}]).encode()
    body, content_type = multipart(
        [("image", "a.jpg", "image/jpeg", PHOTO), ("operations", "ops.json", "application/json", operations)]
    )
    response = _post(images, body, content_type)
    if response.status_code == 202:
        assert response.json()["image"]["operations"] == [{"type": "grayscale"}], (
            f"the operations were dropped: {response.json()['image']}"
        )
    else:
        assert_error_envelope(response, status=400)


def test_a_repeated_operations_field_is_refused(suite, new_account):
    """Two `operations` fields are as ambiguous as two files: the first must not silently win over an
    invalid second one (nor the other way round)."""
    _, token = new_account("Twice")
    body, content_type = multipart(
        [
            ("image", "a.jpg", "image/jpeg", PHOTO),
            ("operations", None, None, b'[{"type": "grayscale"}]'),
            ("operations", None, None, b'[{"type": "blur", "radius": 0}]'),
        ]
    )
    assert_error_envelope(_post(ImagesClient(suite.url, token), body, content_type), status=400)


# -- hostile file names -------------------------------------------------------------------------


def _download_raw(suite, token, image_id):
    request = http_request(
        "GET", f"/api/images/{image_id}/download", {**bearer(token), "Connection": "close"}
    )
    responses, _, _ = raw_http(suite.url, request, timeout=30)
    assert len(responses) == 1, responses
    return responses[0]


def _content_disposition_names(value):
    """(ASCII fallback, the exact name) from `attachment; filename="..."; filename*=UTF-8''...`."""
    disposition, params = parse_options_header(value)
    assert disposition == "attachment", value
    fallback = re.search(r'(?:^|;)\s*filename="([^"\\]*)"', value)
    assert fallback, f"no quoted ASCII filename in {value!r}"
    return fallback.group(1), params.get("filename")


def _assert_safe_stored_name(name, max_length=200):
    assert name and len(name) <= max_length, name
    assert not UNSAFE_IN_FILENAME.search(name), f"unsafe character in the stored name {name!r}"
    assert name not in (".", ".."), name
    assert not re.match(r"^[A-Za-z]:", name), f"a drive in the stored name {name!r}"


# (how it is written in the multipart part, the name the client meant)
HOSTILE_NAMES = {
    "crlf-rfc2231": (
        b"name=\"image\"; filename*=UTF-8''" + quote("фото\r\nX-Injected: 1.jpg").encode(), "фото\r\nX-Injected: 1.jpg"
    ),
    "crlf-html5-escaped": (b'name="image"; filename="' + "фото%0D%0AX-Injected: 1.jpg".encode() + b'"', None),
    "crlf-folded": (b'name="image"; filename="' + "фото\r\n X-Injected: 1.jpg".encode() + b'"', None),
    "unicode": (b'name="image"; filename="' + "Zoë 李.jpg".encode() + b'"', "Zoë 李.jpg"),
    "unicode-rfc2231": (b"name=\"image\"; filename*=UTF-8''" + quote("Zoë 李.jpg").encode(), "Zoë 李.jpg"),
    "traversal-posix": (b'name="image"; filename="../../etc/passwd"', None),
    "traversal-windows": (b'name="image"; filename="..\\..\\win.ini"', None),
    "traversal-rfc2231": (b"name=\"image\"; filename*=UTF-8''..%2F..%2F..%2Fetc%2Fpasswd", None),
    "traversal-mixed": (b'name="image"; filename="..\\/..\\/outputs/evil.jpg"', None),
    "absolute-posix": (b'name="image"; filename="/etc/passwd"', None),
    "absolute-windows": (b'name="image"; filename="C:\\Windows\\win.ini"', None),
    "unc": (b'name="image"; filename="\\\\server\\share\\x.jpg"', None),
    "dots-only": (b'name="image"; filename=".."', None),
    "nul": (b"name=\"image\"; filename*=UTF-8''a%00b.jpg", None),
    "controls": (b"name=\"image\"; filename*=UTF-8''a%01%1b%7f%c2%85%e2%80%a8b.jpg", None),
    "bidi-override": (b"name=\"image\"; filename*=UTF-8''" + quote("evil\u202egpj.exe").encode(), None),
    "quote-and-semicolon": (b"name=\"image\"; filename*=UTF-8''" + quote('a"; filename="evil.sh').encode(), None),
    "very-long": (b'name="image"; filename="' + b"a" * 1000 + b'.jpg"', None),
    "empty": (b'name="image"; filename=""', None),
}


def test_hostile_file_names_are_stored_and_served_safely(suite, new_account):
    _, token = new_account("Names")
    images = ImagesClient(suite.url, token)
    before = suite.storage_files()
    accepted = {}
    problems = []
    for label, (disposition, meant) in HOSTILE_NAMES.items():
        body, content_type = multipart([(disposition, None, "image/jpeg", PHOTO)])
        response = _post(images, body, content_type)
        if response.status_code != 202:
            # A part header the server cannot read is a client error; nothing else is acceptable.
            try:
                assert_error_envelope(response, status=400)
            except AssertionError as exc:
                problems.append(f"{label}: {exc}")
            continue
        image = response.json()["image"]
        accepted[image["id"]] = label
        try:
            _assert_safe_stored_name(image["original_filename"])
            if meant and UNSAFE_IN_FILENAME.search(meant) is None:
                assert image["original_filename"] == meant, f"{meant!r} stored as {image['original_filename']!r}"
        except AssertionError as exc:
            problems.append(f"{label}: {exc}")
    # The plain unicode and the CRLF-in-RFC-2231 names must be accepted: they are legitimate uploads.
    assert {"unicode", "unicode-rfc2231", "crlf-rfc2231", "traversal-posix", "traversal-windows"} <= set(
        accepted.values()
    ), problems

    for image_id, label in accepted.items():
        status = images.status(image_id, wait=60).json()
        if status["status"] != "completed":
            problems.append(f"{label}: ended {status}")
            continue
        stored = images.get(image_id).json()["image"]["original_filename"]
        response = _download_raw(suite, token, image_id)
        try:
            assert response.status == 200, response.text[:300]
            assert_clean_header_block(response)
            fallback, exact = _content_disposition_names(response.headers["Content-Disposition"])
            for name in (fallback, exact):
                _assert_safe_stored_name(name, max_length=255)  # the stored name plus an extension
                assert name.endswith(".jpg"), name
            assert exact.rsplit(".", 1)[0] == (stored.rsplit(".", 1)[0] or "image"), (exact, stored)
        except AssertionError as exc:
            problems.append(f"{label}: {exc}")
    assert not problems, "\n".join(problems)

    after = suite.storage_files()
    for relative in after - before:
        folder, _, name = relative.partition("/")
        assert folder in ("originals", "outputs") and "/" not in name, f"a file outside the layout: {relative}"
    storage = Path(suite.storage_dir).resolve()
    for outside in (storage.parent / "etc" / "passwd", storage.parent.parent / "etc" / "passwd", storage / "win.ini",
                    storage.parent / "win.ini", storage / "outputs" / "evil.jpg", storage / "passwd"):
        assert not outside.exists(), f"an upload was written to {outside}"


def test_a_literal_crlf_in_a_part_header_injects_nothing(suite, new_account):
    """A raw CR LF inside the quoted file name ends the part's header line early: the server may
    refuse the part (400) or take the name up to there, but never echo a header."""
    _, token = new_account("Crlf")
    images = ImagesClient(suite.url, token)
    body, content_type = multipart([("image", "фото\r\nX-Injected: 1.jpg".encode(), "image/jpeg", PHOTO)])
    request = http_request(
        "POST", "/api/images/upload", {**bearer(token), "Content-Type": content_type, "Connection": "close"}, body
    )
    responses, _, _ = raw_http(suite.url, request, timeout=30)
    assert len(responses) == 1
    assert_clean_header_block(responses[0])
    if responses[0].status == 202:
        image = responses[0].json()["image"]
        _assert_safe_stored_name(image["original_filename"])
        assert images.status(image["id"], wait=60).json()["status"] == "completed"
        download = _download_raw(suite, token, image["id"])
        assert download.status == 200
        assert_clean_header_block(download)
    else:
        assert_error_envelope(responses[0], status=400)


# -- bodies that lie about their length, stalled clients ----------------------------------------


def _upload_request(token, body, content_type, content_length, keep_alive=False):
    headers = {
        **bearer(token),
        "Content-Type": content_type,
        "Content-Length": str(content_length),
        "Connection": "keep-alive" if keep_alive else "close",
    }
    return http_request("POST", "/api/images/upload", headers, body)


def test_a_body_shorter_than_its_content_length_then_closed(suite, new_account):
    _, token = new_account("Short")
    images = ImagesClient(suite.url, token)
    before = suite.storage_files()
    body, content_type = multipart([("image", "a.jpg", "image/jpeg", PHOTO)])
    for payload in (
        _upload_request(token, body[: len(body) // 2], content_type, len(body)),
        http_request("POST", "/api/users/login", {"Content-Type": "application/json", "Content-Length": "1000"},
                     b'{"email": "a@example.com", "password": "x"}'),
    ):
        responses, closed, elapsed = raw_http(suite.url, payload, timeout=10, shutdown_write=True)
        assert closed, "the gateway keeps a half-closed connection open"
        for response in responses:  # it may answer (408/400) or just close
            assert_error_envelope(response)
        _still_answering(suite)
    assert images.list().json()["images"] == []
    assert not _new_files(before, suite.storage_files(), _original_ids(before), set())


def test_a_body_shorter_than_its_content_length_left_open(suite, new_account):
    """The client promises more than it sends and waits: the gateway waits too (its body timeout),
    without holding a service worker: meanwhile everything else is answered."""
    _, token = new_account("Waiting")
    body, content_type = multipart([("image", "a.jpg", "image/jpeg", PHOTO)])
    payload = _upload_request(token, body[:1000], content_type, len(body) + 10_000)
    with socket.create_connection(gateway_address(suite.url), timeout=5) as stalled:
        stalled.sendall(payload)
        started = time.monotonic()
        _still_answering(suite)
        accepted = ImagesClient(suite.url, token).upload(PHOTO)
        assert accepted.status_code == 202, accepted.text
        assert time.monotonic() - started < 5


def test_a_body_longer_than_its_content_length(suite, new_account):
    """The extra bytes are not part of the request: the upload is judged on what the length covers
    (a truncated multipart: a 400), and the rest is answered as garbage or dropped, never a 5xx."""
    _, token = new_account("Long")
    images = ImagesClient(suite.url, token)
    body, content_type = multipart([("image", "a.jpg", "image/jpeg", PHOTO)])
    for keep_alive in (False, True):
        payload = _upload_request(token, body, content_type, len(body) // 2, keep_alive=keep_alive)
        # Kept alive, the leftover bytes may be read as the start of a next request that never ends.
        responses, _, _ = raw_http(suite.url, payload, timeout=3 if keep_alive else 10)
        assert responses, "no answer at all"
        for response in responses:
            assert_error_envelope(response, status={400, 415})
            assert_clean_header_block(response)
    login = http_request("POST", "/api/users/login", {"Content-Type": "application/json", "Content-Length": "5"},
                         b'{"email": "a@example.com", "password": "x"}')
    responses, _, _ = raw_http(suite.url, login, timeout=10)
    assert responses
    for response in responses:
        assert_error_envelope(response, status=400)
    assert images.list().json()["images"] == []
    _still_answering(suite)


# A transfer coding the gateway does not implement is 501 by RFC 9112 section 6.1: the one 5xx allowed here.
@pytest.mark.parametrize(
    "headers, statuses",
    [
        ({"Content-Length": "-1"}, {400}),
        ({"Content-Length": "abc"}, {400}),
        ({"Content-Length": "99999999999999999999999999"}, {400, 413}),
        ({"Content-Length": "5", "Transfer-Encoding": "chunked"}, {400}),
        ([("Content-Length", "5"), ("Content-Length", "6")], {400}),
        ({"Transfer-Encoding": "chunked, identity"}, {400, 501}),
        ({"Transfer-Encoding": "gzip"}, {400, 501}),
    ],
    ids=["negative", "not-a-number", "overflow", "length-and-chunked", "two-lengths", "bad-chunked", "unknown-coding"],
)
def test_malformed_framing_is_a_json_client_error(suite, headers, statuses):
    headers = list(headers.items()) if isinstance(headers, dict) else headers
    payload = http_request(
        "POST", "/api/users/login", [("Content-Type", "application/json"), ("Connection", "close"), *headers],
        b"0\r\n\r\n",
    )
    responses, closed, _ = raw_http(suite.url, payload, timeout=10)
    assert responses, "dropped without an answer"
    assert_error_envelope(responses[0], status=statuses)
    assert_clean_header_block(responses[0])
    _still_answering(suite)


def test_a_chunked_upload_is_handled(suite, new_account):
    _, token = new_account("Chunky")
    body, content_type = multipart([("image", "a.jpg", "image/jpeg", PHOTO)])
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 4096]), body[i:i + 4096]) for i in range(0, len(body), 4096))
    payload = http_request(
        "POST", "/api/images/upload",
        {**bearer(token), "Content-Type": content_type, "Transfer-Encoding": "chunked", "Connection": "close"},
        chunks + b"0\r\n\r\n",
    )
    responses, _, _ = raw_http(suite.url, payload, timeout=30)
    assert len(responses) == 1
    if responses[0].status != 202:  # 411 length_required would be acceptable too
        assert_error_envelope(responses[0], status=411)


def test_stalled_clients_do_not_starve_the_suite(suite, new_account):
    """Slowloris: 20 connections that send headers and part of a body (or part of the headers) and
    stall. The gateway buffers bodies itself, so no service worker waits on them: /healthz, a login
    and an upload are still answered quickly."""
    user, token = new_account("Slow")
    body, content_type = multipart([("image", "a.jpg", "image/jpeg", PHOTO)])
    stalled = []
    try:
        for index in range(20):
            connection = socket.create_connection(gateway_address(suite.url), timeout=5)
            if index % 4 == 0:
                connection.sendall(b"POST /api/users/login HTTP/1.1\r\nHost: gateway\r\nContent-Le")
            elif index % 4 == 1:
                connection.sendall(http_request(
                    "POST", "/api/users/signup",
                    {"Content-Type": "application/json", "Content-Length": "100000"}, b'{"name": "Slo',
                ))
            else:
                connection.sendall(_upload_request(token, body[:2000], content_type, 5 * 1024 * 1024, keep_alive=True))
            stalled.append(connection)
        time.sleep(0.5)

        timings = []
        for _ in range(5):
            started = time.monotonic()
            _still_answering(suite)
            timings.append(time.monotonic() - started)
        assert max(timings) < 2.0, f"/healthz took {timings} with 20 stalled clients"

        started = time.monotonic()
        images = ImagesClient(suite.url, token)
        upload = images.upload(PHOTO)
        assert upload.status_code == 202, upload.text
        me = requests.get(f"{suite.url}/api/users/me", headers=bearer(token), timeout=10)
        assert me.status_code == 200 and me.json()["user"]["id"] == user["id"]
        assert time.monotonic() - started < 5
        assert images.status(upload.json()["image"]["id"], wait=60).json()["status"] == "completed"
    finally:
        for connection in stalled:
            connection.close()
    _still_answering(suite)


# -- hostile signup data ------------------------------------------------------------------------


def _signup(suite, name="Zed", email=None, password="a long enough password", raw=None):
    email = email if email is not None else f"zed.{uuid.uuid4().hex[:10]}@example.com"
    data = raw if raw is not None else json.dumps({"name": name, "email": email, "password": password})
    return requests.post(
        f"{suite.url}/api/users/signup",
        data=data.encode() if isinstance(data, str) else data,
        headers={"Content-Type": "application/json"},
        timeout=30,
    )


@pytest.mark.parametrize("name", ["Zoë 李", "Ada Lovelace", "Σωκράτης", "محمد", "😀 emoji", "O'Brien-Smith"])
def test_plain_unicode_names_are_welcome(suite, name):
    response = _signup(suite, name=name)
    assert response.status_code == 201, response.text
    assert response.json()["user"]["name"] == name


CONTROL_NAMES = {
    "crlf-header": "Eve\r\nBcc: victim@example.com",
    "lf": "Eve\nX",
    "cr": "Eve\rX",
    "tab": "Eve\tX",
    "nul": "Eve\x00X",
    "nul-only": "\x00",
    "escape": "Eve\x1b[31m",
    "delete": "Eve\x7fX",
    "c1-next-line": "Eve\x85X",
    "only-spaces": "   ",
    "empty": "",
}


@pytest.mark.parametrize("name", list(CONTROL_NAMES.values()), ids=list(CONTROL_NAMES))
def test_names_with_control_characters_are_refused(suite, name):
    response = _signup(suite, name=name)
    body = assert_error_envelope(response, status=400, code="validation_error")
    assert "name" in body["error"]["details"], body


HOSTILE_EMAILS = {
    "crlf-header": "eve@example.com\r\nBcc: victim@example.com",
    "lf": "eve\n@example.com",
    "nul": "eve\x00@example.com",
    "display-name": "Eve <eve@example.com>",
    "two-addresses": "eve@example.com, victim@example.com",
    "no-domain": "eve@",
    "spaces": "eve @example.com",
    "too-long": "e" * 250 + "@example.com",
}


@pytest.mark.parametrize("email", list(HOSTILE_EMAILS.values()), ids=list(HOSTILE_EMAILS))
def test_hostile_emails_are_refused(suite, email):
    body = assert_error_envelope(_signup(suite, email=email), status=400, code="validation_error")
    assert "email" in body["error"]["details"], body


def test_a_unicode_email_is_either_accepted_as_typed_or_refused_cleanly(suite):
    email = f"zoë.{uuid.uuid4().hex[:8]}@exämple.com"
    response = _signup(suite, email=email)
    if response.status_code == 201:
        assert response.json()["user"]["email"] == email
    else:
        assert_error_envelope(response, status=400, code="validation_error")


# Lone surrogates are valid JSON escapes but not Unicode text: they cannot be stored or hashed.
RAW_SIGNUPS = {
    "surrogate-name": '{"name": "\\ud800", "email": "%s", "password": "a long enough password"}',
    "surrogate-in-name": '{"name": "Eve\\udfffX", "email": "%s", "password": "a long enough password"}',
    "surrogate-password": '{"name": "Eve", "email": "%s", "password": "' + "\\ud800" * 8 + '"}',
    "surrogate-email": '{"name": "Eve", "email": "\\ud800%s", "password": "a long enough password"}',
    "nul-password": '{"name": "Eve", "email": "%s", "password": "a long\\u0000enough password"}',
    "name-is-number": '{"name": 42, "email": "%s", "password": "a long enough password"}',
    "name-is-list": '{"name": ["Eve"], "email": "%s", "password": "a long enough password"}',
    "password-is-null": '{"name": "Eve", "email": "%s", "password": null}',
    "deeply-nested": '{"name": ' + "[" * 20000 + "]" * 20000 + ', "email": "%s", "password": "a long enough password"}',
}


@pytest.mark.parametrize("case", list(RAW_SIGNUPS))
def test_signup_bodies_that_cannot_be_stored_are_refused(suite, case):
    email = f"eve.{uuid.uuid4().hex[:10]}@example.com"
    response = _signup(suite, raw=RAW_SIGNUPS[case] % email)
    if case == "nul-password" and response.status_code == 201:
        return  # a NUL is just a character of a password: it is hashed, never stored
    assert_error_envelope(response, status=400, code="validation_error")


RAW_LOGINS = {
    "nul-email": '{"email": "eve\\u0000@example.com", "password": "a long enough password"}',
    "surrogate-email": '{"email": "\\ud800@example.com", "password": "a long enough password"}',
    "surrogate-password": '{"email": "eve@example.com", "password": "\\ud800"}',
    "crlf-email": '{"email": "eve@example.com\\r\\nBcc: x@example.com", "password": "a long enough password"}',
    "deeply-nested": '{"email": ' + "[" * 20000 + "]" * 20000 + ', "password": "x"}',
    "email-is-object": '{"email": {"$ne": null}, "password": "x"}',
}


@pytest.mark.parametrize("case", list(RAW_LOGINS))
def test_hostile_logins_are_client_errors(suite, case):
    response = requests.post(
        f"{suite.url}/api/users/login",
        data=RAW_LOGINS[case].encode(),
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert_error_envelope(response, status={400, 401}, code={"validation_error", "invalid_credentials"})


def test_the_suite_is_healthy_after_all_this(suite):
    health = _still_answering(suite)
    assert health.json()["failing"] == []
    assert "Traceback" not in requests.get(f"{suite.url}/healthz", timeout=10).text
    probe = ImagesClient(suite.url, sign_up_and_log_in(suite.url, "After")[1]).upload(small_image())
    assert probe.status_code == 202, probe.text
