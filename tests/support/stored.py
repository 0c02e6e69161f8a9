"""What a store holds, as the tests look at it, the same way on both stores (shared/storage).

    view = StoreView(config)        # the store the configuration names, opened as the services do
    view.names()                    # every stored name: originals/<id>, outputs/<id>.<ext>
    view.read(name); view.write(name, data)
    view.write_partial(name)        # what a writer killed half-way leaves: a .part file, or an
    view.partials()                 #   incomplete multipart upload
"""
import contextlib

from shared.storage import open_store
from shared.storage.base import FOLDERS
from shared.storage.local import FolderStore
from shared.storage import partial_files


class StoreView:
    def __init__(self, config):
        self.store = open_store(config)
        self.kind = self.store.kind

    def _all(self):
        return [stored for folder in FOLDERS for stored in self.store.listing(folder)]

    def names(self):
        return sorted(stored.name for stored in self._all() if not stored.partial)

    def partials(self):
        return sorted(stored.name for stored in self._all() if stored.partial)

    def exists(self, name):
        return name in self.names()

    def read(self, name):
        with self.store.fetched(name) as path:
            return path.read_bytes()

    def write(self, name, data):
        with self.store.spool.file() as path:
            path.write_bytes(data)
            self.store.put_file(path, name)

    def write_partial(self, name, data=b"half an image"):
        """Leaves `name` half-written, as a writer killed in the middle would."""
        if isinstance(self.store, FolderStore):
            path = partial_files.partial_path(self.store.root / name)
            path.write_bytes(data)
            return
        client, bucket = self.store.client, self.store.bucket
        key = self.store.location.key(name)
        upload = client.create_multipart_upload(Bucket=bucket, Key=key)
        client.upload_part(Bucket=bucket, Key=key, UploadId=upload["UploadId"], PartNumber=1, Body=data)

    def remove_everything(self):
        for stored in self._all():
            with contextlib.suppress(Exception):
                self.store.remove_listed(stored)
