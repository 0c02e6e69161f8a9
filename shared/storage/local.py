"""The folder store (`file://`, the default): originals and outputs as files under one root.

nginx serves outputs from the same folder (X-Accel-Redirect to its internal /_storage/ location),
so every service and the gateway must see it: one host, or a shared volume.
"""
import contextlib
import errno
import os
import shutil
import uuid
from pathlib import Path

from shared import errors
from shared.storage import partial_files
from shared.storage.base import FOLDERS, ObjectMissing, Staged, StoredObject


class FolderStore:
    kind = "file"

    def __init__(self, location, spool):
        self.root = location.root
        self.url = location.url
        self.spool = spool
        for folder in FOLDERS:
            (self.root / folder).mkdir(parents=True, exist_ok=True)

    def describe(self):
        return self.url

    def _path(self, name):
        return self.root / name

    @contextlib.contextmanager
    def staged(self, name):
        """A local path to write `name` to, beside its final place; `commit()` puts it there in
        one rename. Without a commit (an error, a refusal) it is removed."""
        target = self._path(name)
        temporary = partial_files.partial_path(target)
        staged = Staged(temporary, lambda **_: os.replace(temporary, target))
        try:
            yield staged
        finally:
            temporary.unlink(missing_ok=True)

    def put_file(self, local_path, name, content_type=None):
        """Stores the local file as `name` (a move: the local file is gone afterwards)."""
        target = self._path(name)
        try:
            os.replace(local_path, target)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise _storage_error(exc)
            # The spool is on another file system: copied beside the target, then renamed.
            temporary = partial_files.partial_path(target)
            try:
                shutil.copyfile(local_path, temporary)
                os.replace(temporary, target)
            except OSError as copy_exc:
                raise _storage_error(copy_exc)
            finally:
                temporary.unlink(missing_ok=True)
                Path(local_path).unlink(missing_ok=True)

    @contextlib.contextmanager
    def fetched(self, name):
        """A local path holding `name`'s bytes for the block: here, the stored file itself."""
        path = self._path(name)
        if not path.is_file():
            raise ObjectMissing(name)
        yield path

    def remove(self, *names):
        for name in names:
            if name:
                self._path(name).unlink(missing_ok=True)

    def remove_partials(self, image_id):
        """Removes what a dead writer left half-written for `image_id`."""
        for folder in FOLDERS:
            for path in partial_files.leftovers(self.root / folder, image_id):
                path.unlink(missing_ok=True)

    def listing(self, folder):
        for path in (self.root / folder).iterdir():
            try:
                if path.is_file():
                    yield StoredObject(f"{folder}/{path.name}", path.stat().st_mtime, partial=path.name.startswith("."))
            except FileNotFoundError:
                continue

    def remove_listed(self, stored):
        self._path(stored.name).unlink(missing_ok=True)

    def gateway_location(self, name):
        """Where nginx finds `name` (X-Accel-Redirect): its folder alias, nginx.conf /_storage/."""
        return f"/_storage/{name}"

    def free_bytes(self):
        return shutil.disk_usage(self.root).free

    def check(self):
        probe = self.root / f".health-{uuid.uuid4().hex}"
        probe.write_bytes(b"ok")
        probe.unlink()


def _storage_error(exc):
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return errors.ServiceUnavailable("No space left in the image store", {"dependency": "storage"})
    return exc
