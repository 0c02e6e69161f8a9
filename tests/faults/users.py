"""The suite as its users see it: accounts, uploads (what was sent and what the gateway answered),
and the images the fault tests send."""
import contextlib
import dataclasses
import io
import json
import random
import time
import uuid

import eventlet
import requests
from eventlet import tpool
from PIL import Image

from tests.support.clients import ACCOUNT_PASSWORD, ImagesClient, bearer, sign_up_and_log_in

SLOW_SIDE = 6000  # a 6000x6000 WebP: ~0.5 s to validate, ~1 s per blur at full size
SLOW_OPERATIONS = [
    {"type": "blur", "radius": 50},
    {"type": "blur", "radius": 50},
    {"type": "sharpen", "amount": 2, "radius": 20},
    {"type": "resize", "width": 800},
]
SMALL_OPERATIONS = [
    [{"type": "resize", "width": 160}, {"type": "convert", "format": "webp"}],
    [{"type": "rotate", "degrees": 90}, {"type": "grayscale"}],
    [{"type": "crop", "left": 10, "top": 10, "width": 100, "height": 80}, {"type": "convert", "format": "png"}],
    [{"type": "watermark", "text": "faults"}, {"type": "compress", "quality": 60}],
]
FAILING_OPERATIONS = [{"type": "crop", "left": 5000, "top": 0, "width": 10, "height": 10}]  # invalid_crop


def json_error_problem(response):
    """Why this error answer is not the contract's JSON envelope (None when it is)."""
    if not response.headers.get("Content-Type", "").startswith("application/json"):
        return f"{response.status_code} with Content-Type {response.headers.get('Content-Type')!r}: {response.text[:200]!r}"
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return f"{response.status_code} JSON without an error envelope: {response.text[:200]!r}"
    if not (isinstance(error.get("code"), str) and isinstance(error.get("message"), str)
            and isinstance(error.get("details"), dict)):
        return f"{response.status_code} malformed error envelope: {error!r}"
    return None


def noise_image(seed, size, fmt="JPEG", **options):
    """A deterministic image that does not compress to nothing: smooth noise scaled up."""
    rng = random.Random(seed)
    cells = (max(2, size[0] // 40), max(2, size[1] // 40))
    small = Image.frombytes("RGB", cells, rng.randbytes(cells[0] * cells[1] * 3))
    image = small.resize(size, Image.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


@dataclasses.dataclass
class Account:
    user: dict
    email: str
    password: str
    token: str
    images: ImagesClient


@dataclasses.dataclass
class Upload:
    """One upload attempt: what was sent and what the gateway answered (or the client error)."""

    filename: str
    data: bytes
    operations: list
    account: Account
    status_code: int = None
    body: object = None
    error: str = None  # no HTTP answer at all (connection refused or reset)
    json_problem: str = None  # an error answer that was not the JSON envelope
    seconds: float = None

    @property
    def accepted(self):
        return self.status_code == 202

    @property
    def image_id(self):
        return self.body["image"]["id"] if self.accepted else None

    @property
    def error_code(self):
        try:
            return self.body["error"]["code"]
        except (TypeError, KeyError):
            return None

    def __repr__(self):
        return f"<Upload {self.filename} {self.status_code or self.error} {self.error_code or ''}>"


class Users:
    """Requests through the gateway at `url`, as clients make them."""

    def __init__(self, url):
        self.url = url
        self._slow_image = None

    def account(self, name="Fault"):
        user, token = sign_up_and_log_in(self.url, name)
        return Account(user, user["email"], ACCOUNT_PASSWORD, token, ImagesClient(self.url, token))

    def upload(self, account, data, operations, filename=None):
        upload = Upload(filename or f"{uuid.uuid4().hex[:12]}.img", data, operations, account)
        started = time.monotonic()
        try:
            response = requests.post(
                f"{self.url}/api/images/upload",
                headers=bearer(account.token),
                files={"image": (upload.filename, data, "application/octet-stream")},
                data={"operations": json.dumps(operations)},
                timeout=90,
            )
        except requests.RequestException as exc:
            upload.error = f"{type(exc).__name__}: {exc}"
            return upload
        finally:
            upload.seconds = time.monotonic() - started
        upload.status_code = response.status_code
        if response.status_code != 202:
            upload.json_problem = json_error_problem(response)
        with contextlib.suppress(ValueError):
            upload.body = response.json()
        return upload

    def upload_stream(self, account, count, interval, label, fail_every=0):
        """Starts `count` small uploads, one every `interval` seconds, concurrently (each in its own
        green thread); returns a function that waits for all of them and returns their Uploads."""
        pool = eventlet.GreenPool(count)
        threads = []
        for index in range(count):
            data = self.small_image(index)
            operations = FAILING_OPERATIONS if fail_every and index % fail_every == fail_every - 1 else \
                SMALL_OPERATIONS[index % len(SMALL_OPERATIONS)]
            threads.append(pool.spawn(self.upload, account, data, operations, f"{label}-{index:03d}.jpg"))
            time.sleep(interval)

        def results():
            return [thread.wait() for thread in threads]

        return results

    def small_image(self, seed):
        return noise_image(seed, (320 + seed % 7 * 16, 240 + seed % 5 * 16), "JPEG", quality=85)

    def slow_image(self):
        """A WebP whose validation (~0.5 s) and processing with SLOW_OPERATIONS (seconds) are slow
        enough to be killed in the middle of, made once per session."""
        if self._slow_image is None:
            self._slow_image = tpool.execute(noise_image, 7, (SLOW_SIDE, SLOW_SIDE), "WEBP", quality=80)
        return self._slow_image
