"""The failure vocabulary: image error codes (imaging/failures.py) and transient errors (shared/transient.py), each defined once."""
import kombu.exceptions
import pytest
import redis.exceptions
import sqlalchemy.exc

from imaging.pipeline import PipelineError
from shared import errors
from imaging import openapi
from imaging.failures import ImageFailure
from shared.transient import is_transient


def test_openapi_lists_exactly_the_image_error_codes():
    code = openapi.load_document()["components"]["schemas"]["ImageError"]["properties"]["code"]
    assert code["enum"] == [str(failure) for failure in ImageFailure]


def test_every_code_is_described():
    assert all(failure.description for failure in ImageFailure)


def test_a_pipeline_failure_outside_the_vocabulary_is_a_bug():
    with pytest.raises(ValueError):
        PipelineError("something_new", "not in the contract")
    assert PipelineError("invalid_crop", "outside").code is ImageFailure.INVALID_CROP


def test_codes_travel_as_plain_strings():
    import json

    assert json.dumps({"code": ImageFailure.PROCESSING_TIMEOUT}) == '{"code": "processing_timeout"}'
    assert ImageFailure.PROCESSING_TIMEOUT == "processing_timeout"


def test_only_the_suites_own_failures_are_retryable():
    assert {f for f in ImageFailure if f.retryable} == {
        ImageFailure.PROCESSING_CRASHED, ImageFailure.PROCESSING_UNAVAILABLE, ImageFailure.PROCESSING_TIMEOUT}


@pytest.mark.parametrize("exc", [
    sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("server closed the connection")),
    sqlalchemy.exc.TimeoutError("QueuePool limit reached"),
    kombu.exceptions.OperationalError("[Errno 111] ECONNREFUSED"),
    redis.exceptions.ConnectionError("Connection refused"),
    ConnectionResetError(104, "reset"),
    TimeoutError("timed out"),
    errors.ServiceUnavailable("upload_service is away"),
], ids=lambda e: type(e).__name__)
def test_transient(exc):
    assert is_transient(exc)


@pytest.mark.parametrize("exc", [
    ValueError("a bug"), errors.NotFound(), sqlalchemy.exc.IntegrityError("INSERT", {}, Exception("duplicate")),
], ids=lambda e: type(e).__name__)
def test_not_transient(exc):
    assert not is_transient(exc)
