"""Where image bytes live: one interface, two stores, chosen by STORAGE_URL.

    store = open_store(config)            # FolderStore (file://) or BucketStore (s3://)
    with store.staged(original_name(id)) as staged:     # a local file to write, then
        ...; staged.commit(content_type)                #   stored (renamed, or uploaded)
    with store.fetched(name) as path: ...               # a local file holding the bytes
    store.put_file(local_path, name, content_type)      # stores and removes a local file
    store.remove(*names); store.remove_partials(image_id)
    store.listing(folder); store.remove_listed(stored)  # the sweeper's view
    store.gateway_location(name)                        # X-Accel-Redirect target for nginx
    store.check()                                       # readiness

Local scratch files (uploads being validated, originals being processed, outputs being encoded)
come from `store.spool` (shared/storage/spool.py) and never outlive their request or run.
"""
import tempfile
from pathlib import Path

from shared.config import resolve_path
from shared.settings import setting
from shared.storage.base import ORIGINALS, OUTPUTS, ObjectMissing, original_name, output_name
from shared.storage.location import BucketLocation, parse_storage_url
from shared.storage.spool import Spool

__all__ = ["ORIGINALS", "OUTPUTS", "ObjectMissing", "open_store", "original_name", "output_name"]


def spool_root(config):
    configured = setting(config, "SPOOL_DIR")
    return resolve_path(configured) if configured else Path(tempfile.gettempdir()) / "imageproc-spool"


def open_store(config, storage_url=None):
    """The store STORAGE_URL (or `storage_url`, a tool's argument) names."""
    location = parse_storage_url(storage_url or setting(config, "STORAGE_URL"), setting(config, "STORAGE_DIR"))
    spool = Spool(spool_root(config))
    if isinstance(location, BucketLocation):
        from shared.storage.s3 import BucketStore  # boto3 is loaded only by a deployment that uses it

        return BucketStore(
            location,
            spool,
            max_connections=setting(config, "STORAGE_MAX_CONNECTIONS"),
            timeout_seconds=setting(config, "STORAGE_TIMEOUT_SECONDS"),
        )
    from shared.storage.local import FolderStore

    return FolderStore(location, spool)
