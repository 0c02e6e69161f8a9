"""Local scratch space for image bytes on their way to or from the store, for one process.

An upload is validated (decoded) from a local file before it is stored; a pipeline decodes an
original fetched from an object store and encodes its output to a local file before storing it.
Those files live only as long as the request or the pipeline run: each comes from a context
manager that removes it when the block ends, whether it ended well or not.

A process killed with files in hand cannot remove them, so each process writes under a folder of
its own, `<SPOOL_DIR>/<host name>-<pid>`, and every process clears, when it starts and then
periodically, the folders of processes of its host that are gone, and any folder older than
`max_age_seconds` (a pid reused by another process, or a host of its own that is gone for good).
The host name keeps processes of different containers sharing one volume out of each other's way:
a pid means nothing in another pid namespace.
"""
import contextlib
import os
import shutil
import socket
import time
import uuid
from pathlib import Path


def _pid_running(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Spool:
    def __init__(self, root):
        self.root = Path(root)
        self.host = socket.gethostname().replace("-", "_")
        self.folder = self.root / f"{self.host}-{os.getpid()}"

    def _own_folder(self):
        # Made again when missing: the cleaner of another process may have found it old.
        self.folder.mkdir(parents=True, exist_ok=True)
        return self.folder

    @contextlib.contextmanager
    def file(self, suffix=""):
        """A new local path, removed when the block ends."""
        path = self._own_folder() / f"{uuid.uuid4().hex}{suffix}"
        try:
            yield path
        finally:
            path.unlink(missing_ok=True)

    @contextlib.contextmanager
    def folder_for_run(self):
        """A new local folder, removed with all it holds when the block ends."""
        path = self._own_folder() / uuid.uuid4().hex
        path.mkdir()
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def clean_leftovers(self, max_age_seconds):
        """Removes what dead processes left; returns the folders removed."""
        if not self.root.is_dir():
            return []
        cutoff = time.time() - max_age_seconds
        removed = []
        for folder in self.root.iterdir():
            host, _, pid = folder.name.rpartition("-")
            if folder == self.folder or not pid.isdigit():
                continue
            try:
                dead = host == self.host and not _pid_running(int(pid))
                if dead or folder.stat().st_mtime < cutoff:
                    shutil.rmtree(folder, ignore_errors=True)
                    removed.append(folder)
            except FileNotFoundError:
                continue
        return removed
