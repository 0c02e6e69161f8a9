"""Files on local disk under STORAGE_DIR, with server-chosen names only.

originals/<image id>          the upload, as received
outputs/<image id>.<ext>      the processed result (written by process_service)

nginx serves outputs directly (X-Accel-Redirect to its internal /_storage/ location), so the names
here are part of the deployment: keep them in step with nginx.conf.
"""
import errno
import os
import shutil
import time
import uuid
from pathlib import Path

from shared import errors, partial_files
from shared.config import resolve_path
from upload_service.models import FAILED

ORIGINALS, OUTPUTS = "originals", "outputs"
MAX_FILENAME_LENGTH = 200
COPY_CHUNK = 1024 * 1024


class Storage:
    def __init__(self, root):
        self.root = resolve_path(root)
        for folder in (ORIGINALS, OUTPUTS):
            (self.root / folder).mkdir(parents=True, exist_ok=True)

    def path(self, relative):
        return self.root / relative

    def save_original(self, image_id, stream, max_bytes):
        """Copies the upload to originals/<id>, atomically. Returns (relative path, size).
        Refuses bodies over max_bytes while copying; a full disk is a 507, never half a file."""
        relative = f"{ORIGINALS}/{image_id}"
        target = self.root / relative
        temporary = partial_files.partial_path(target)
        size = 0
        try:
            with open(temporary, "wb") as out:
                while chunk := stream.read(COPY_CHUNK):
                    size += len(chunk)
                    if size > max_bytes:
                        raise errors.TooLarge(
                            f"The file is larger than {max_bytes} bytes", {"max_bytes": max_bytes}
                        )
                    out.write(chunk)
            os.replace(temporary, target)
        except OSError as exc:
            temporary.unlink(missing_ok=True)
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise errors.InsufficientStorage()
            raise
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        return relative, size

    def remove(self, *relatives):
        for relative in relatives:
            if relative:
                (self.root / relative).unlink(missing_ok=True)

    def remove_partial_outputs(self, image_id):
        """Removes what a dead process_service left half-written for `image_id`."""
        for path in partial_files.leftovers(self.root / OUTPUTS, image_id):
            path.unlink(missing_ok=True)

    def output_stem(self, image_id):
        return f"{OUTPUTS}/{image_id}"

    def free_bytes(self):
        return shutil.disk_usage(self.root).free

    def check_writable(self):
        probe = self.root / f".health-{uuid.uuid4().hex}"
        probe.write_bytes(b"ok")
        probe.unlink()


def safe_filename(name, fallback="image"):
    """The client's file name, reduced to something safe to store and to echo in headers."""
    name = Path(str(name or "").replace("\\", "/")).name
    name = "".join(ch for ch in name if ch.isprintable() and ch not in '"<>|:*?/\\').strip(" .")
    if len(name) > MAX_FILENAME_LENGTH:
        stem, dot, extension = name.rpartition(".")
        keep = extension if dot and len(extension) <= 10 else ""
        name = name[: MAX_FILENAME_LENGTH - len(keep) - 1].rstrip(" .") + ("." + keep if keep else "")
    return name or fallback


def image_id_of(path):
    """The image id a stored file belongs to (`<id>` or `<id>.<ext>`), or None for anything else."""
    try:
        return uuid.UUID(path.name.split(".", 1)[0])
    except ValueError:
        return None


class Sweeper:
    """Finds what a crash can leave behind: half-written files (`.part`), files whose image has no
    row (a process killed between writing the file and committing the row, a result that arrived
    for a deleted image) and results of images that failed (a late result from a worker that had
    timed out). Only files older than `min_age_seconds` are candidates, so an upload in progress is
    never touched; a result of an image not yet final stays, its event may still be on its way."""

    def __init__(self, storage, min_age_seconds):
        self.storage = storage
        self.min_age_seconds = min_age_seconds

    def old_files(self):
        cutoff = time.time() - self.min_age_seconds
        for folder in (ORIGINALS, OUTPUTS):
            for path in (self.storage.root / folder).iterdir():
                try:
                    if path.is_file() and path.stat().st_mtime < cutoff:
                        yield path
                except FileNotFoundError:
                    continue

    def sweep(self, statuses):
        """Removes old partial files and old files no image needs; `statuses(image ids)` gives
        {image id: status} for those that have a row. Returns the paths removed."""
        candidates = list(self.old_files())
        partial = [path for path in candidates if path.name.startswith(".")]
        by_id = {}
        for path in candidates:
            image_id = image_id_of(path)
            if image_id is not None and not path.name.startswith("."):
                by_id.setdefault(image_id, []).append(path)
        known = statuses(list(by_id)) if by_id else {}
        orphans = [
            path for image_id, paths in by_id.items() for path in paths
            if image_id not in known or (path.parent.name == OUTPUTS and known[image_id] == FAILED)
        ]
        for path in partial + orphans:
            path.unlink(missing_ok=True)
        return partial + orphans
