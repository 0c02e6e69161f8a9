"""The contract's error vocabulary, shared by every service.

Each class is one stable error `code` of the public contract. The mapping to HTTP status lives in one
table (`shared.http.MAPPED_ERRORS`); the classes are registered with nameko so that an error raised by
a remote service over RPC arrives as the caller's own class, not as `RemoteError`.
"""
from nameko.exceptions import deserialize_to_instance


class ApiError(Exception):
    """An error the client may see. `message` is human readable, `details` machine readable."""

    default_message = "Request failed"

    def __init__(self, message=None, details=None):
        self.message = message or self.default_message
        self.details = details or {}
        # Both travel in `args`, which is what nameko serialises for a remote caller.
        super().__init__(self.message, self.details)

    def __str__(self):
        return self.message


# nameko serialises a remote exception by its import path; registering makes the caller re-raise it as is.
_registered = deserialize_to_instance


@_registered
class ValidationError(ApiError):
    default_message = "The request is not valid"


@_registered
class InvalidOperations(ApiError):
    default_message = "The operations are not valid"


@_registered
class Unauthorized(ApiError):
    default_message = "Authentication required"


@_registered
class InvalidCredentials(ApiError):
    default_message = "Email or password is incorrect"


@_registered
class NotFound(ApiError):
    default_message = "Not found"


@_registered
class EmailTaken(ApiError):
    default_message = "An account with this email already exists"


@_registered
class NotReady(ApiError):
    default_message = "The image is not processed yet"


@_registered
class TooLarge(ApiError):
    default_message = "The upload is too large"


@_registered
class UnsupportedMediaType(ApiError):
    default_message = "The file is not an image of a supported format"


@_registered
class TooManyRequests(ApiError):
    default_message = "Too many requests, slow down"


@_registered
class InsufficientStorage(ApiError):
    default_message = "The server has no room to store this upload"


@_registered
class ServiceUnavailable(ApiError):
    default_message = "A dependency is unavailable"
