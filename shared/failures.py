"""The failure vocabulary, defined once.

- `ImageFailure`: why an image failed, the `error.code` of a `failed` image in the contract (its
  description is what openapi.yaml says of it; `python -m shared.openapi` writes the enum there),
  and whether uploading the same image again later may succeed (`retryable`).
- Transient errors: a server away or restarting (`SERVER_AWAY_ERRORS`) or saturated
  (`OVERLOAD_ERRORS`). `TRANSIENT_ERRORS` is both, plus another service saying it is unavailable:
  a handler retries these later (shared/delivery.py), an HTTP entrypoint answers them with 503 and
  `Retry-After` (shared/http.py), the database helpers retry them (shared/db.py).
"""
import enum

import kombu.exceptions
import redis.exceptions
import sqlalchemy.exc

from shared import errors


class ImageFailure(enum.StrEnum):
    INVALID_CROP = "invalid_crop"
    TOO_LARGE = "too_large"
    DECODE_ERROR = "decode_error"
    ENCODE_ERROR = "encode_error"
    PROCESSING_ERROR = "processing_error"
    INVALID_OPERATIONS = "invalid_operations"
    SOURCE_MISSING = "source_missing"
    PROCESSING_CRASHED = "processing_crashed"
    PROCESSING_UNAVAILABLE = "processing_unavailable"
    PROCESSING_TIMEOUT = "processing_timeout"

    @property
    def description(self):
        return _DESCRIPTIONS[self]

    @property
    def retryable(self):
        """An upload of the same image later may succeed: the failure was the suite's, not the image's."""
        return self in _RETRYABLE


_DESCRIPTIONS = {
    ImageFailure.INVALID_CROP: "a crop outside the image at its step",
    ImageFailure.TOO_LARGE: "an operation would make an image over the pixel limit, or memory ran out",
    ImageFailure.DECODE_ERROR: "the original cannot be decoded",
    ImageFailure.ENCODE_ERROR: "the result cannot be written in the requested format",
    ImageFailure.PROCESSING_ERROR: "an operation failed for a reason of the image library's",
    ImageFailure.INVALID_OPERATIONS: "the operations no longer validate",
    ImageFailure.SOURCE_MISSING: "the original is no longer stored",
    ImageFailure.PROCESSING_CRASHED: "its worker died MAX_PROCESSING_ATTEMPTS times",
    ImageFailure.PROCESSING_UNAVAILABLE: "a needed service stayed unavailable through every retry",
    ImageFailure.PROCESSING_TIMEOUT: "still running after PROCESSING_TIMEOUT_SECONDS",
}

_RETRYABLE = frozenset({
    ImageFailure.PROCESSING_CRASHED,
    ImageFailure.PROCESSING_UNAVAILABLE,
    ImageFailure.PROCESSING_TIMEOUT,
})

# A server this service needs is down or restarting: PostgreSQL, the broker, Redis, a peer's socket.
DATABASE_AWAY_ERRORS = (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError)
SERVER_AWAY_ERRORS = (
    *DATABASE_AWAY_ERRORS,
    kombu.exceptions.OperationalError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    ConnectionError,
    TimeoutError,
)
# Saturated, not a bug: every pooled database connection stayed busy longer than the pool waits.
OVERLOAD_ERRORS = (sqlalchemy.exc.TimeoutError,)
# The database cannot serve now, away or saturated.
DATABASE_UNAVAILABLE_ERRORS = (*DATABASE_AWAY_ERRORS, *OVERLOAD_ERRORS)

TRANSIENT_ERRORS = (*SERVER_AWAY_ERRORS, *OVERLOAD_ERRORS, errors.ServiceUnavailable)


def is_transient(exc):
    return isinstance(exc, TRANSIENT_ERRORS)
