"""upload_service's entrypoints with their dependencies replaced (nameko's worker_factory): what is
refused before anything is stored, what a refusal leaves behind, and status answers from the cache."""
import io
import json
import uuid

import pytest
from werkzeug.http import parse_options_header
from nameko.testing.services import worker_factory
from PIL import Image as PILImage
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from shared import errors
from shared.storage import open_store
from shared.filenames import content_disposition
from upload_service.service import UploadService, operations_from
from upload_service.status import GONE

USER_ID = str(uuid.uuid4())


def multipart(image=b"", filename="photo.png", operations=None, extra=None):
    data = {"image": (io.BytesIO(image), filename)}
    if operations is not None:
        data["operations"] = operations
    data.update(extra or {})
    return Request(EnvironBuilder(method="POST", path="/api/images/upload", data=data).get_environ())


def png_bytes():
    buffer = io.BytesIO()
    PILImage.new("RGB", (8, 6), "teal").save(buffer, "PNG")
    return buffer.getvalue()


def stored_files(store):
    return sorted(str(path.relative_to(store.root)) for path in store.root.rglob("*") if path.is_file())


@pytest.fixture
def store(tmp_path):
    return open_store({"STORAGE_DIR": str(tmp_path / "storage"), "SPOOL_DIR": str(tmp_path / "spool")})


@pytest.fixture
def worker(store):
    # The folder store is real (it is one class, on a temporary folder); the rest are nameko's mocks.
    worker = worker_factory(UploadService, storage=store)
    worker.auth.user_id.return_value = USER_ID
    worker.auth.user.return_value = (USER_ID, None)
    worker.limits.max_upload_bytes = 10_000_000
    worker.limits.max_operations = 20
    worker.limits.max_image_pixels = 10_000_000
    worker.limits.max_wait_seconds = 60
    return worker


def test_invalid_operations_are_refused_before_anything_is_stored(worker, store):
    request = multipart(png_bytes(), operations=json.dumps([{"type": "resize", "width": 0}]))
    with pytest.raises(errors.InvalidOperations) as refused:
        worker.upload(request)
    assert refused.value.details["field"] == "width"
    assert stored_files(store) == []
    worker.db.session.add.assert_not_called()


def test_two_files_are_refused_before_anything_is_stored(worker, store):
    request = Request(EnvironBuilder(method="POST", data={
        "image": [(io.BytesIO(b"a"), "a.png"), (io.BytesIO(b"b"), "b.png")],
    }).get_environ())
    with pytest.raises(errors.ValidationError):
        worker.upload(request)
    assert stored_files(store) == []


def test_a_file_that_is_no_image_leaves_neither_file_nor_row(worker, store):
    with pytest.raises(errors.UnsupportedMediaType):
        worker.upload(multipart(b"not an image at all"))
    assert stored_files(store) == []
    worker.db.session.add.assert_not_called()
    worker.db.session.commit.assert_not_called()
    worker.status.cache.set.assert_not_called()


def test_a_database_failure_after_the_file_was_stored_removes_the_file(worker, store):
    stored_before_the_row = []
    worker.db.session.flush.side_effect = lambda: (stored_before_the_row.extend(stored_files(store)),
                                                   (_ for _ in ()).throw(RuntimeError("the database went away")))
    with pytest.raises(RuntimeError):
        worker.upload(multipart(png_bytes()))
    assert len(stored_before_the_row) == 1 and stored_before_the_row[0].startswith("originals/")
    assert stored_files(store) == []
    worker.db.session.rollback.assert_called_once()


def status_request(wait=0):
    return Request(EnvironBuilder(method="GET", query_string={"wait": str(wait)}).get_environ())


def test_a_cached_status_is_answered_without_the_database(worker):
    image_id = str(uuid.uuid4())
    body = {"id": image_id, "status": "completed", "updated_at": "2026-12-04T00:00:00+00:00"}
    worker.status.cache.get.return_value = (USER_ID, body)
    assert worker.image_status(status_request(), image_id) == (200, body)
    worker.db.session.get.assert_not_called()


@pytest.mark.parametrize("cached", [(str(uuid.uuid4()), {"status": "queued"}), GONE])
def test_another_users_image_or_a_deleted_one_is_not_found(worker, cached):
    worker.status.cache.get.return_value = cached
    with pytest.raises(errors.NotFound):
        worker.image_status(status_request(), str(uuid.uuid4()))


def test_a_status_wait_beyond_the_limit_is_refused(worker):
    with pytest.raises(errors.ValidationError):
        worker.image_status(status_request(wait=61), str(uuid.uuid4()))


# -- the operations field --------------------------------------------------------------------------


def form(**fields):
    return Request(EnvironBuilder(method="POST", data=fields).get_environ())


def test_operations_come_as_text_or_as_a_file_part():
    operations = [{"type": "grayscale"}]
    assert operations_from(form(operations=json.dumps(operations))) == operations
    assert operations_from(form(operations=(io.BytesIO(json.dumps(operations).encode()), "ops.json"))) == operations


@pytest.mark.parametrize("fields", [{}, {"operations": ""}, {"operations": "  "}])
def test_no_operations_or_an_empty_field_is_no_operations(fields):
    assert operations_from(form(**fields)) == []


@pytest.mark.parametrize("fields, reason", [
    ({"operations": "[{"}, "invalid JSON"),
    ({"operations": (io.BytesIO(b"\xff\xfe"), "ops.json")}, "not UTF-8"),
    ({"operations": (io.BytesIO(b" " * 70_000), "ops.json")}, "too large"),
])
def test_a_bad_operations_field_says_why(fields, reason):
    with pytest.raises(errors.InvalidOperations) as refused:
        operations_from(form(**fields))
    assert refused.value.details["reason"] == reason


def test_operations_sent_twice_are_refused():
    request = Request(EnvironBuilder(method="POST", data={"operations": ["[]", "[]"]}).get_environ())
    with pytest.raises(errors.InvalidOperations, match="once"):
        operations_from(request)


def test_the_download_name_has_an_ascii_fallback_and_the_exact_name():
    header = content_disposition('café "x".png')
    assert header == "attachment; filename=\"cafe _x.png\"; filename*=UTF-8''caf%C3%A9%20%22x%22.png"


@pytest.mark.parametrize(
    "name, fallback",
    [
        ("名前.png", "image.png"),  # was ".png": a hidden-file name
        ("résumé.jpg", "resume.jpg"),
        ("Zoë 李.jpg", "Zoe.jpg"),
        ("фото отпуск.webp", "image.webp"),
        ("plain name.gif", "plain name.gif"),
        ("no extension", "no extension"),
        ("..名前..png", "image.png"),
    ],
)
def test_the_ascii_fallback_is_readable_and_never_a_hidden_name(name, fallback):
    header = content_disposition(name, "inline")
    disposition, params = parse_options_header(header)
    assert disposition == "inline"
    assert params["filename"] == name  # werkzeug prefers filename*, as browsers do
    assert f'filename="{fallback}"' in header
