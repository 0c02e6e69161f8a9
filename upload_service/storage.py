"""Files on local disk under STORAGE_DIR, with server-chosen names only.

originals/<image id>          the upload, as received
outputs/<image id>.<ext>      the processed result (written by process_service)

nginx serves outputs directly (X-Accel-Redirect to its internal /_storage/ location), so the names
here are part of the deployment: keep them in step with nginx.conf.
"""
import errno
import os
import shutil
import uuid
from pathlib import Path

from shared import errors
from shared.config import resolve_path

ORIGINALS, OUTPUTS = "originals", "outputs"
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
        temporary = target.with_name(f".{image_id}.{uuid.uuid4().hex}.part")
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
    return name[:200] or fallback
