"""What both stores share: the names of stored things, what a listing yields, the errors.

Stored names are relative and chosen by the server only (`originals/<image id>`,
`outputs/<image id>.<variant>.<ext>`); rows keep them, so a row never depends on where the bytes
live. An upload's outputs are its variants (`default` when it asked for plain `operations`), one
object per format made of each.
"""
from dataclasses import dataclass

from shared import errors

ORIGINALS, OUTPUTS = "originals", "outputs"
FOLDERS = (ORIGINALS, OUTPUTS)
COPY_CHUNK = 1024 * 1024


def original_name(image_id):
    return f"{ORIGINALS}/{image_id}"


def output_name(image_id, extension, variant="default"):
    return f"{OUTPUTS}/{image_id}.{variant}.{extension}"


class ObjectMissing(Exception):
    """The stored thing is not there (deleted, or never written)."""


def unavailable(store, exc):
    """The error a client or a retrying handler sees when the store cannot be used right now:
    a JSON 503 for a request, a later retry for an event (shared/delivery.py)."""
    return errors.ServiceUnavailable(
        f"The image store is unavailable ({type(exc).__name__})", {"dependency": "storage", "store": store.url}
    )


@dataclass(frozen=True)
class StoredObject:
    """One entry of a listing. `partial` marks what a writer left unfinished (a `.part` file, an
    incomplete multipart upload): never an image's bytes, removed by the sweeper once old."""

    name: str  # relative: originals/<id>, outputs/<id>.<variant>.<ext>, or the partial's own name
    modified: float  # epoch seconds
    partial: bool = False
    upload_id: str = None  # an incomplete multipart upload's


class Staged:
    """A local file being written (`path`) that `commit()` stores under its name."""

    def __init__(self, path, commit):
        self.path = path
        self._commit = commit

    def commit(self, content_type=None):
        self._commit(content_type=content_type)
