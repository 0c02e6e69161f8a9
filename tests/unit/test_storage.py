"""shared/storage on a temporary folder: STORAGE_URL, the folder store, the spool, the sweeper.
(Both stores against the real SeaweedFS: tests/integration/test_stores.py.)"""
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from shared import errors
from shared.storage import ObjectMissing, open_store, output_name
from shared.storage.location import BucketLocation, FolderLocation, InvalidStorageUrl, parse_storage_url
from shared.storage.spool import Spool
from shared.filenames import safe_filename
from upload_service.sweeper import Sweeper, image_id_of


@pytest.fixture
def store(tmp_path):
    return open_store({"STORAGE_DIR": str(tmp_path / "storage"), "SPOOL_DIR": str(tmp_path / "spool")})


def files_under(root):
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())


# -- STORAGE_URL ---------------------------------------------------------------------------------


def test_an_empty_storage_url_is_the_storage_dir_folder(tmp_path):
    assert parse_storage_url("", tmp_path) == FolderLocation(tmp_path)
    assert parse_storage_url("file:///srv/images", "ignored") == FolderLocation(Path("/srv/images"))


@pytest.mark.parametrize("url, bucket, prefix, key", [
    ("s3://images", "images", "", "originals/x"),
    ("s3://images/", "images", "", "originals/x"),
    ("s3://images/prod/eu/", "images", "prod/eu", "prod/eu/originals/x"),
])
def test_an_s3_url_names_a_bucket_and_a_prefix(url, bucket, prefix, key):
    location = parse_storage_url(url, "unused")
    assert location == BucketLocation(bucket, prefix)
    assert location.key("originals/x") == key and location.relative(key) == "originals/x"


@pytest.mark.parametrize("url", [
    "s3://", "s3://UPPER", "s3://images/with space", "s3://images/a?x=1", "file://host/path",
    "file:relative", "gs://images", "/just/a/path",
])
def test_a_storage_url_that_names_nothing_usable_is_refused_by_name(url):
    with pytest.raises(InvalidStorageUrl, match="STORAGE_URL"):
        parse_storage_url(url, "unused")


# -- the folder store ----------------------------------------------------------------------------------


def test_a_staged_file_is_stored_whole_only_on_commit(store):
    with store.staged("originals/a") as staged:
        staged.path.write_bytes(b"x" * 3_000_000)
        assert "originals/a" not in {s.name for s in store.listing("originals") if not s.partial}
        staged.commit()
    with store.fetched("originals/a") as path:
        assert path.read_bytes() == b"x" * 3_000_000
    assert files_under(store.root) == ["originals/a"]


def test_a_staged_file_without_a_commit_leaves_nothing(store):
    # The upload refused (413 once written, 415 once decoded) or its client gone mid-body: no commit.
    for refusal in (errors.TooLarge("The file is larger than 2000000 bytes"), ConnectionResetError("the client went away")):
        with pytest.raises(type(refusal)):
            with store.staged("originals/b") as staged:
                staged.path.write_bytes(b"x" * 3_000_000)
                raise refusal
        assert files_under(store.root) == []


def test_put_file_moves_a_spool_file_into_the_store(store):
    with store.spool.file(".png") as path:
        path.write_bytes(b"png")
        store.put_file(path, "outputs/d.png")
        assert not path.exists()
    with store.fetched("outputs/d.png") as stored:
        assert stored.read_bytes() == b"png"


def test_fetching_what_is_not_stored_is_object_missing(store):
    with pytest.raises(ObjectMissing):
        with store.fetched("originals/nothing"):
            pass


def test_remove_partials_removes_only_that_images_half_written_files(store):
    mine, theirs = uuid.uuid4(), uuid.uuid4()
    from shared.storage import partial_files
    left = [partial_files.partial_path(store.root / "outputs" / f"{image}.webp") for image in (mine, theirs)]
    for path in left:
        path.write_bytes(b"half")
    store.remove_partials(mine)
    assert [path.exists() for path in left] == [False, True]
    assert [s.partial for s in store.listing("outputs")] == [True]


def test_the_gateway_is_sent_to_its_storage_folder(store):
    assert store.gateway_location("outputs/e.png") == "/_storage/outputs/e.png"


# -- the spool -------------------------------------------------------------------------------------------


def test_spool_files_and_run_folders_are_removed_when_their_block_ends(tmp_path):
    spool = Spool(tmp_path)
    with pytest.raises(RuntimeError):
        with spool.file() as path, spool.folder_for_run() as run:
            path.write_bytes(b"x")
            (run / "output.png").write_bytes(b"y")
            raise RuntimeError("the pipeline failed")
    assert files_under(tmp_path) == []


def test_the_spool_of_a_killed_process_is_removed_by_the_next_one(tmp_path):
    """A process killed in the middle of a run leaves its spool folder: another process of the
    same host removes it (its pid is gone), but not the folder of a process still running."""
    code = ("import sys, os; from shared.storage.spool import Spool; s = Spool(sys.argv[1]); "
            "c = s.file(); p = c.__enter__(); p.write_bytes(b'x'); os._exit(9)")
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=Path(__file__).parents[2], check=False)
    left = [folder for folder in tmp_path.iterdir()]
    assert len(left) == 1 and files_under(left[0])
    mine = Spool(tmp_path)
    with mine.file() as path:
        path.write_bytes(b"in use")
        assert mine.clean_leftovers(max_age_seconds=3600) == left
        assert path.exists()
    assert [folder for folder in tmp_path.iterdir()] == [mine.folder]


def test_a_spool_folder_of_another_host_is_removed_only_when_old(tmp_path):
    young, old = tmp_path / "otherhost-123", tmp_path / "otherhost-456"
    for folder in (young, old):
        folder.mkdir()
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    assert Spool(tmp_path).clean_leftovers(max_age_seconds=3600) == [old]
    assert young.exists()


# -- names -----------------------------------------------------------------------------------------------


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


def test_stored_names_name_their_image():
    image_id = uuid.uuid4()
    assert image_id_of(f"originals/{image_id}") == image_id
    assert image_id_of(f"outputs/{image_id}.webp") == image_id
    assert image_id_of(output_name(image_id, "webp", variant="thumbnail")) == image_id
    assert image_id_of("outputs/.health-probe") is None


# -- the sweeper -----------------------------------------------------------------------------------------


def stored(store, name, age_seconds):
    path = store.root / name
    path.write_bytes(b"x")
    then = time.time() - age_seconds
    os.utime(path, (then, then))
    return name


def test_the_sweeper_removes_old_leftovers_and_keeps_what_an_image_needs(store):
    completed, failed, unknown, young = (uuid.uuid4() for _ in range(4))
    keep = [
        stored(store, f"originals/{completed}", 600),
        stored(store, f"outputs/{completed}.png", 600),
        stored(store, f"originals/{failed}", 600),
        stored(store, f"originals/{young}", 5),  # an upload in progress: too young to be a leftover
    ]
    remove = [
        stored(store, f"outputs/{failed}.png", 600),  # a late result of a timed-out image
        stored(store, f"originals/{unknown}", 600),  # its row was never committed
        stored(store, f"outputs/.{uuid.uuid4()}.png.part", 600),  # half-written by a dead worker
    ]
    asked = []

    def statuses(image_ids):
        asked.append(set(image_ids))
        known = {completed: "completed", failed: "failed"}
        return {image_id: known[image_id] for image_id in image_ids if image_id in known}

    removed = Sweeper(store, min_age_seconds=60).sweep(statuses)
    assert sorted(s.name for s in removed) == sorted(remove)
    assert files_under(store.root) == sorted(keep)
    assert asked == [{completed, failed, unknown}]


# -- the object store's errors, as the suite's ------------------------------------------------------


def _bucket_store(tmp_path):
    return open_store({"STORAGE_URL": "s3://bucket", "SPOOL_DIR": str(tmp_path / "spool")})


def _upload_failed(code):
    """What boto3's upload_file raises after its last attempt: S3UploadFailedError, with the
    store's ClientError as its context."""
    from boto3.exceptions import S3UploadFailedError
    from botocore.exceptions import ClientError

    try:
        raise ClientError({"Error": {"Code": code, "Message": "..."}}, "PutObject")
    except ClientError:
        raise S3UploadFailedError(f"Failed to upload: {code}")


def test_an_upload_the_store_answered_500_to_is_unavailable_for_now(tmp_path):
    """SeaweedFS answers InternalError for a while after it restarts: a retry later, not a
    dead-lettered image (seen in the store-outage fault test)."""
    store = _bucket_store(tmp_path)
    with pytest.raises(errors.ServiceUnavailable) as raised:
        with store._calls("outputs/x.default.jpg"):
            _upload_failed("InternalError")
    assert raised.value.details["dependency"] == "storage"


def test_an_upload_the_store_refused_for_good_stays_an_error(tmp_path):
    from boto3.exceptions import S3UploadFailedError

    store = _bucket_store(tmp_path)
    with pytest.raises(S3UploadFailedError):
        with store._calls("outputs/x.default.jpg"):
            _upload_failed("AccessDenied")


def test_a_download_whose_retries_ran_out_is_unavailable_for_now(tmp_path):
    from boto3.exceptions import RetriesExceededError

    store = _bucket_store(tmp_path)
    with pytest.raises(errors.ServiceUnavailable):
        with store._calls("originals/x"):
            raise RetriesExceededError(ConnectionResetError())
