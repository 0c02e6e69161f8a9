"""upload_service/storage.py on a temporary folder: atomic originals, safe names, the sweeper."""
import errno
import io
import os
import time
import uuid

import pytest

from shared import errors
from upload_service import storage as storage_module
from upload_service.storage import Storage, Sweeper, image_id_of, safe_filename


@pytest.fixture
def storage(tmp_path):
    return Storage(tmp_path)


def files_under(root):
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())


def test_an_original_is_stored_whole_under_its_image_id(storage, tmp_path):
    image_id = uuid.uuid4()
    relative, size = storage.save_original(image_id, io.BytesIO(b"x" * 3_000_000), max_bytes=5_000_000)
    assert (relative, size) == (f"originals/{image_id}", 3_000_000)
    assert storage.path(relative).read_bytes() == b"x" * 3_000_000
    assert files_under(tmp_path) == [relative]


def test_a_body_over_the_limit_is_refused_and_leaves_nothing(storage, tmp_path):
    with pytest.raises(errors.TooLarge):
        storage.save_original(uuid.uuid4(), io.BytesIO(b"x" * 3_000_000), max_bytes=2_000_000)
    assert files_under(tmp_path) == []


def test_a_full_disk_is_insufficient_storage_and_leaves_nothing(storage, tmp_path, monkeypatch):
    real_open = open

    class FullDisk(io.FileIO):
        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    def opening(path, mode="r", *args, **kwargs):
        return FullDisk(path, "wb") if "w" in mode else real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(storage_module, "open", opening, raising=False)
    with pytest.raises(errors.InsufficientStorage):
        storage.save_original(uuid.uuid4(), io.BytesIO(b"x" * 100), max_bytes=1000)
    assert files_under(tmp_path) == []


def test_a_client_gone_mid_upload_leaves_nothing(storage, tmp_path):
    class Broken(io.BytesIO):
        def read(self, size=-1):
            raise ConnectionResetError("the client went away")

    with pytest.raises(ConnectionResetError):
        storage.save_original(uuid.uuid4(), Broken(), max_bytes=1000)
    assert files_under(tmp_path) == []


@pytest.mark.parametrize("given, stored", [
    ("photo.jpg", "photo.jpg"),
    ("../../etc/passwd", "passwd"),
    ("C:\\Users\\ada\\cat.png", "cat.png"),
    ('evil"<name>|.png', "evilname.png"),
    ("\x00\x1b[31m.png", "[31m.png"),
    ("...", "image"),
    ("", "image"),
    (None, "image"),
    ("a" * 300 + ".jpeg", "a" * 195 + ".jpeg"),
])
def test_client_file_names_are_reduced_to_safe_ones(given, stored):
    assert safe_filename(given) == stored
    assert len(safe_filename(given)) <= 200


def test_stored_files_name_their_image():
    image_id = uuid.uuid4()
    assert image_id_of(storage_module.Path(f"originals/{image_id}")) == image_id
    assert image_id_of(storage_module.Path(f"outputs/{image_id}.webp")) == image_id
    assert image_id_of(storage_module.Path("outputs/.health-probe")) is None


def stored(root, relative, age_seconds):
    path = root / relative
    path.write_bytes(b"x")
    then = time.time() - age_seconds
    os.utime(path, (then, then))
    return path


def test_the_sweeper_removes_old_leftovers_and_keeps_what_an_image_needs(storage, tmp_path):
    completed, failed, unknown, young = (uuid.uuid4() for _ in range(4))
    keep = [
        stored(tmp_path, f"originals/{completed}", 600),
        stored(tmp_path, f"outputs/{completed}.png", 600),
        stored(tmp_path, f"originals/{failed}", 600),
        stored(tmp_path, f"originals/{young}", 5),  # an upload in progress: too young to be a leftover
    ]
    remove = [
        stored(tmp_path, f"outputs/{failed}.png", 600),  # a late result of a timed-out image
        stored(tmp_path, f"originals/{unknown}", 600),  # its row was never committed
        stored(tmp_path, f"outputs/.{uuid.uuid4()}.png.part", 600),  # half-written by a dead worker
    ]
    asked = []

    def statuses(image_ids):
        asked.append(set(image_ids))
        known = {completed: "completed", failed: "failed"}
        return {image_id: known[image_id] for image_id in image_ids if image_id in known}

    removed = Sweeper(storage, min_age_seconds=60).sweep(statuses)
    assert sorted(removed) == sorted(remove)
    assert all(path.exists() for path in keep) and not any(path.exists() for path in remove)
    assert asked == [{completed, failed, unknown}]
