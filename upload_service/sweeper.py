"""What a crash can leave in the store, found and removed (both stores, through their listings).

- partial writes: `.part` files of the folder store, incomplete multipart uploads of an object
  store (a process killed while it wrote);
- objects whose image has no row: an upload killed between storing its bytes and committing its
  row, a result that arrived for an image deleted meanwhile, a delete whose removal failed because
  the store was down;
- outputs of images that failed: a late result from a worker that had timed out.

Only what is older than `min_age_seconds` is a candidate, so an upload in progress is never
touched; a result of an image not yet final stays: its event may still be on its way.
"""
import time
import uuid

from shared.storage.base import FOLDERS, OUTPUTS
from upload_service.models import FAILED


def image_id_of(name):
    """The image id a stored name belongs to (`<folder>/<id>` or `<folder>/<id>.<ext>`), or None."""
    try:
        return uuid.UUID(name.rsplit("/", 1)[-1].split(".", 1)[0])
    except ValueError:
        return None


class Sweeper:
    def __init__(self, store, min_age_seconds):
        self.store = store
        self.min_age_seconds = min_age_seconds

    def old_objects(self):
        cutoff = time.time() - self.min_age_seconds
        for folder in FOLDERS:
            for stored in self.store.listing(folder):
                if stored.modified < cutoff:
                    yield stored

    def sweep(self, statuses):
        """Removes old partial writes and old objects no image needs; `statuses(image ids)` gives
        {image id: status} for those that have a row. Returns what was removed."""
        candidates = list(self.old_objects())
        partial = [stored for stored in candidates if stored.partial]
        by_id = {}
        for stored in candidates:
            image_id = image_id_of(stored.name)
            if image_id is not None and not stored.partial:
                by_id.setdefault(image_id, []).append(stored)
        known = statuses(list(by_id)) if by_id else {}
        orphans = [
            stored for image_id, objects in by_id.items() for stored in objects
            if image_id not in known or (stored.name.startswith(f"{OUTPUTS}/") and known[image_id] == FAILED)
        ]
        for stored in partial + orphans:
            self.store.remove_listed(stored)
        return partial + orphans
