"""Why an image failed: the `error.code` of a `failed` image in the contract, defined once.

Each code has its description (what openapi.yaml says of it; `python -m imaging.openapi` writes the
enum there) and whether uploading the same image again later may succeed (`retryable`).
`PipelineError` is an image failing with one of them.
"""
import enum


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


class PipelineError(Exception):
    """The image cannot be processed; `code` is an ImageFailure, `variant` the variant that failed
    (None when the original itself is at fault)."""

    def __init__(self, code, message, variant=None):
        code = ImageFailure(code)  # a code outside the contract's vocabulary is a bug: ValueError
        super().__init__(code, message)
        self.code = code
        self.message = message
        self.variant = variant

    def __str__(self):
        return f"{self.code}: {self.message}"
