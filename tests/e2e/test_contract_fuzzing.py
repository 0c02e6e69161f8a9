"""Contract fuzzing: schemathesis generates requests from openapi.yaml (valid ones, and invalid ones
in its negative mode), sends them through the gateway of the running suite and checks every answer
against the same document: never a 5xx, only documented status codes and content types, and bodies
that match the documented schemas.

Bounded for CI: a fixed seed, derandomized generation, no shrinking and a few dozen examples per
operation (the examples and coverage phases add the documented examples and boundary values).

What is adjusted, and why (nothing is excluded):
- Every request carries a valid Bearer token of an account made for this module, so that the
  authenticated operations are exercised beyond their 401.
- In positive mode an upload carries a real (tiny) image instead of random bytes, so that the
  generated operations get validated, stored and processed, not just refused as 415. Accepted
  uploads are followed to their final status and then deleted.
- In positive mode the image id of GET/status/download is, for most cases, one of this account's
  images (completed, failed), so that the 200 schemas are checked too; DELETE gets an image
  uploaded for the purpose, never one another case still needs.
- Operations that end a session run with a token or an account made for the purpose: logout with a
  fresh login of the fuzzing account (it revokes the token it is called with), a password change
  with an account of its own (it revokes every token of the account), whose current password the
  positive cases know, so that the change itself is exercised too.
"""
import zlib
from pathlib import Path

import pytest
import requests
import schemathesis
from schemathesis.config import SchemathesisConfig

from shared.config import REPO_ROOT
from tests.support.clients import ImagesClient, bearer
from tests.support.clients import ACCOUNT_PASSWORD, sign_up_and_log_in
from tests.support.hostile import small_image

pytestmark = pytest.mark.e2e

OPENAPI = Path(REPO_ROOT) / "openapi.yaml"
MAX_EXAMPLES = 50
SEED = 20241129

CONFIG = SchemathesisConfig.from_dict(
    {
        "seed": SEED,
        "generation": {
            "max-examples": MAX_EXAMPLES,
            "deterministic": True,
            "no-shrink": True,
            # No example database: a run never replays an earlier run's failures, so CI is repeatable.
            # (Hypothesis still keeps small caches in .hypothesis/, which it git-ignores itself.)
            "database": "none",
        },
        "phases": {"stateful": {"enabled": False}},  # the document declares no links: nothing to chain
        "suppress-health-check": ["too_slow", "filter_too_much", "data_too_large"],
    }
)
schema = schemathesis.openapi.from_path(OPENAPI, config=CONFIG)

CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
]
REQUEST_TIMEOUT = 75  # the status long poll may legitimately wait up to 60 s


class Fuzzing:
    """The account every generated request runs as, and its images."""

    def __init__(self, url, user, token, completed, failed):
        self.url = url
        self.user = user
        self.token = token
        self.images = ImagesClient(url, token)
        self.known_ids = [completed, failed]

    def fresh_token(self):
        """Another token of the fuzzing account, for a request that revokes the one it carries."""
        login = requests.post(
            f"{self.url}/api/users/login", json={"email": self.user["email"], "password": ACCOUNT_PASSWORD}, timeout=30
        )
        assert login.status_code == 200, login.text
        return login.json()["access_token"]

    def throwaway_account(self):
        """(token, password) of an account of its own, for a request that revokes all its tokens."""
        _, token = sign_up_and_log_in(self.url, "Throwaway")
        return token, ACCOUNT_PASSWORD


def _final_image(images, operations):
    response = images.upload(small_image(), operations, filename="fuzz.png", content_type="image/png")
    assert response.status_code == 202, response.text
    image_id = response.json()["image"]["id"]
    status = images.wait_until_done(image_id)
    assert status["status"] in ("completed", "failed"), status
    return image_id, status["status"]


@pytest.fixture(scope="module")
def fuzzing(suite):
    user, token = sign_up_and_log_in(suite.url, "Fuzzer")
    images = ImagesClient(suite.url, token)
    completed, state = _final_image(images, [{"type": "grayscale"}, {"type": "convert", "format": "webp"}])
    assert state == "completed"
    failed, state = _final_image(images, [{"type": "crop", "left": 100, "top": 0, "width": 10, "height": 10}])
    assert state == "failed"
    return Fuzzing(suite.url, user, token, completed, failed)


def _is_positive(case):
    meta = case.meta
    return meta is None or meta.generation.mode.is_positive


def _prepare(case, fuzzing):
    """Adjusts the case as the module's docstring says; returns (operationId, the token to send)."""
    operation_id = case.operation.definition.raw.get("operationId")
    token = fuzzing.token
    if operation_id == "logout":
        token = fuzzing.fresh_token()
    elif operation_id == "changePassword":
        token, password = fuzzing.throwaway_account()
        if _is_positive(case) and isinstance(case.body, dict):
            case.body = {**case.body, "current_password": password}
    if not _is_positive(case):
        return operation_id, token
    if operation_id == "uploadImage" and isinstance(case.body, dict):
        case.body = {**case.body, "image": small_image()}
    elif operation_id in ("getImage", "getImageStatus", "downloadImage") and case.path_parameters:
        generated = str(case.path_parameters.get("image_id"))
        slot = zlib.crc32(generated.encode()) % (len(fuzzing.known_ids) + 1)
        if slot < len(fuzzing.known_ids):  # the last slot keeps the generated id (a 404)
            case.path_parameters = {**case.path_parameters, "image_id": fuzzing.known_ids[slot]}
    elif operation_id == "deleteImage" and case.path_parameters:
        made = fuzzing.images.upload(small_image(), filename="delete-me.png", content_type="image/png")
        assert made.status_code == 202, made.text
        case.path_parameters = {**case.path_parameters, "image_id": made.json()["image"]["id"]}
    return operation_id, token


def _follow_accepted_upload(fuzzing, response):
    """An accepted upload reaches a final status (whatever valid operations it was given) and can
    be deleted; a stuck or crashed pipeline would show here."""
    image_id = response.json()["image"]["id"]
    status = fuzzing.images.status(image_id, wait=60)
    assert status.status_code == 200, status.text
    assert status.json()["status"] in ("completed", "failed"), f"not final after 60 s: {status.json()}"
    if status.json()["status"] == "failed":
        assert status.json()["error"]["code"], status.json()
    deleted = fuzzing.images.delete(image_id)
    assert deleted.status_code == 204, deleted.text


@schema.parametrize()
def test_every_answer_honours_the_openapi_contract(case, fuzzing):
    operation_id, token = _prepare(case, fuzzing)
    response = case.call_and_validate(
        base_url=fuzzing.url,
        headers=bearer(token),
        checks=CHECKS,
        timeout=REQUEST_TIMEOUT,
    )
    if operation_id == "uploadImage" and response.status_code == 202:
        _follow_accepted_upload(fuzzing, response)


def test_the_served_document_is_the_fuzzed_one(suite):
    """The gateway serves the very file the fuzzer reads, so the contract checked is the published one."""
    served = requests.get(f"{suite.url}/api/openapi.yaml", timeout=10)
    assert served.status_code == 200
    assert served.text == OPENAPI.read_text()
