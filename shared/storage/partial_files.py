"""Files being written: `.<image id>.<random>.part`, beside their target, renamed into place when whole.

The name carries the image id so that whoever learns that an image's writer died (upload_service,
when a processing lease runs out) removes what that writer left at once, without waiting for the
sweeper; the leading dot keeps nginx and the sweeper's orphan check from taking it for a result.
"""
import uuid
from pathlib import Path

SUFFIX = ".part"


def partial_path(target):
    """A new, unused name for writing `target` (`<folder>/<image id>[.<ext>]`)."""
    target = Path(target)
    image_id = target.name.split(".", 1)[0]
    return target.with_name(f".{image_id}.{uuid.uuid4().hex}{SUFFIX}")


def leftovers(folder, image_id):
    """The partial files of `image_id` in `folder`."""
    return sorted(Path(folder).glob(f".{image_id}.*{SUFFIX}"))
