"""upload_service and process_service together, against the real broker, database, Redis and store.

Whatever reaches image bytes (uploads, pipelines, downloads, deletes, the sweeper, crashes and
their leftovers) runs on both stores, the folder and the real S3 (SeaweedFS), and looks at what is
stored only through `StoreView`, so that one assertion says the same thing on both. Tests whose
subject is elsewhere (authorization, listing, the status cache, claims, tokens, dead letters) run
on the folder store only (`FILE_ONLY`): the store is not what they test, and a second run costs
time without telling more.
"""
import io
import json
import math
import os
import re
import time
from pathlib import Path
from urllib.parse import urlsplit

import eventlet
import pytest
import redis
from nameko.testing.services import entrypoint_hook
from PIL import Image as PILImage
from sqlalchemy import func, select

from process_service.service import ProcessService
from shared.db import make_engine
from shared.revocation import LOADED_KEY
from shared.storage import open_store
from tests.conftest import CORPUS_DIR, STORE_KINDS
from tests.support.processes import free_port
from tests.support.clients import ImagesClient, issuer_from, new_user_id
from tests.support.stored import StoreView
from upload_service import claims
from upload_service import service as upload_module
from upload_service.models import Image, OutboxEvent
from upload_service.service import UploadService

HOPPER = CORPUS_DIR / "good-images" / "hopper.jpg"
LANDSCAPE_6 = CORPUS_DIR / "good-images" / "Landscape_6.jpg"
# For a test that never reaches the store in a way of its own: the folder store is enough.
FILE_ONLY = pytest.mark.parametrize("storage_backend", ["file"])


@pytest.fixture(params=STORE_KINDS)
def storage_backend(request):
    return request.param


@pytest.fixture
def upload_service(container_factory, config):
    container = container_factory(UploadService, config)
    container.start()
    return container


@pytest.fixture
def process_service(container_factory, config):
    container = container_factory(ProcessService, {**config, "WEB_SERVER_ADDRESS": f"127.0.0.1:{free_port()}"})
    container.start()
    return container


@pytest.fixture
def client_for(config, web_url, redis_url):
    issuer = issuer_from(config)
    # No user_service here: stand in for its mirror of revocations (none revoked), as it keeps it.
    redis.Redis.from_url(redis_url).set(LOADED_KEY, "1")

    def make(user_id=None, contact=None):
        return ImagesClient(web_url, issuer.issue(user_id or new_user_id(), contact)["access_token"])

    return make


@pytest.fixture
def db(config):
    engine = make_engine(config["DATABASE_URL"])
    yield engine
    engine.dispose()


def stored_files(config):
    """Everything the store holds, half-written things included: "nothing left behind" means no
    `.part` file and no incomplete multipart upload either."""
    view = StoreView(config)
    return view.names() + view.partials()


def stored_output(config, name):
    """An output's bytes as PIL opens them, from whichever store holds them."""
    return PILImage.open(io.BytesIO(StoreView(config).read(name)))


def partials_of(config, image_id):
    """What is half-written for `image_id`: `.<id>.<random>.part` files, or incomplete multipart
    uploads of `<folder>/<id>[.<ext>]`; both names carry the id."""
    return [name for name in StoreView(config).partials() if image_id in name]


def expected_redirect(config, name):
    """Where nginx is sent for `name`, written out from the configuration rather than asked of the
    store: its folder alias, or the object's key (the bucket prefix, then the name) under /_objects/."""
    if not config["STORAGE_URL"]:
        return f"/_storage/{name}"
    prefix = urlsplit(config["STORAGE_URL"]).path.strip("/")
    return f"/_objects/{prefix}/{name}"


def spool_files(config):
    """What the services' local scratch space (SPOOL_DIR) holds: nothing, once no request or
    pipeline runs, on either store."""
    return [path for path in Path(config["SPOOL_DIR"]).rglob("*") if path.is_file()]


def test_upload_is_processed_and_downloadable(upload_service, process_service, client_for, config):
    client = client_for()
    response = client.upload(HOPPER, [{"type": "resize", "width": 64}, {"type": "convert", "format": "png"}])
    assert response.status_code == 202, response.text
    image = response.json()["image"]
    assert image["status"] == "queued"
    assert (image["width"], image["height"], image["format"]) == (128, 128, "jpeg")
    assert image["original_filename"] == "photo.jpg"
    assert image["operations"][0]["fit"] == "contain", "defaults are filled in"

    status = client.wait_until_done(image["id"], timeout=30)
    assert status["status"] == "completed", status
    done = client.get(image["id"]).json()["image"]
    assert done["output"]["width"] == 64 and done["output"]["format"] == "png"
    assert done["output"]["download_url"] == f"/api/images/{image['id']}/download"

    download = client.download(image["id"])
    assert download.status_code == 200
    assert download.headers["Content-Type"] == "image/png"
    name = f"outputs/{image['id']}.default.png"
    assert download.headers["X-Accel-Redirect"] == open_store(config).gateway_location(name)
    assert download.headers["X-Accel-Redirect"] == expected_redirect(config, name)
    if not config["STORAGE_URL"]:
        assert download.headers["X-Accel-Redirect"] == f"/_storage/outputs/{image['id']}.default.png", "nginx.conf's alias"
    assert 'filename="photo.png"' in download.headers["Content-Disposition"]
    with stored_output(config, name) as output:
        assert output.size == (64, 64) and output.format == "PNG"


def test_exif_orientation_is_applied_and_reported_upright(upload_service, process_service, client_for, config):
    client = client_for()
    image = client.upload(LANDSCAPE_6, [{"type": "resize", "width": 300}]).json()["image"]
    assert client.wait_until_done(image["id"])["status"] == "completed"
    with stored_output(config, f"outputs/{image['id']}.default.jpg") as output:
        assert output.size == (300, 200)
        assert not output.getexif(), "no EXIF in outputs"


@FILE_ONLY
def test_another_user_cannot_see_or_touch_an_image(upload_service, client_for):
    owner, stranger = client_for(), client_for()
    image_id = owner.upload(HOPPER).json()["image"]["id"]
    for response in (
        stranger.get(image_id), stranger.status(image_id, wait=0), stranger.download(image_id), stranger.delete(image_id)
    ):
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
    assert owner.get(image_id).status_code == 200
    assert stranger.list().json()["images"] == []


@FILE_ONLY
def test_download_before_completion_is_409_and_status_does_not_wait_forever(upload_service, client_for):
    client = client_for()
    image_id = client.upload(HOPPER).json()["image"]["id"]
    response = client.download(image_id)
    assert response.status_code == 409 and response.json()["error"]["code"] == "not_ready"
    started = time.monotonic()
    status = client.status(image_id, wait=1)
    assert status.status_code == 200 and status.json()["status"] == "queued"
    assert 0.9 < time.monotonic() - started < 5


def test_long_poll_returns_as_soon_as_the_image_is_done(upload_service, process_service, client_for):
    client = client_for()
    image_id = client.upload(HOPPER, [{"type": "grayscale"}]).json()["image"]["id"]
    started = time.monotonic()
    status = client.status(image_id, wait=30).json()
    assert status["status"] == "completed"
    assert time.monotonic() - started < 10


@FILE_ONLY
def test_an_image_that_finishes_between_the_first_read_and_the_listening_still_wakes_its_poll(
    upload_service, client_for, redis_url, config, monkeypatch
):
    """A long-poll reads the status, then listens for the doorbell: a result landing in between
    rings for nobody, so the poll must read again once it listens, or it sleeps its whole wait."""
    from contextlib import contextmanager

    import eventlet

    from upload_service.models import Image as ImageRow
    from upload_service.status import StatusCache, StatusNotifier

    client = client_for()
    image_id = client.upload(HOPPER).json()["image"]["id"]
    with make_engine(config["DATABASE_URL"]).connect() as connection:
        row = connection.execute(select(ImageRow.__table__).where(ImageRow.id == image_id)).one()._mapping
    finished = ImageRow(**{**dict(row), "status": "failed", "error_code": "decode_error", "error_message": "x"})
    cache = StatusCache(redis.Redis.from_url(redis_url, decode_responses=True))
    listen = StatusNotifier.listening

    @contextmanager
    def finished_just_before(notifier, waited_id):
        cache.set(finished)  # the result and its doorbell, before this poll listens
        eventlet.sleep(0.3)  # the doorbell has rung for no one
        with listen(notifier, waited_id) as wait:
            yield wait

    monkeypatch.setattr(StatusNotifier, "listening", finished_just_before)
    started = time.monotonic()
    status = client.status(image_id, wait=10).json()
    assert status["status"] == "failed"
    assert time.monotonic() - started < 3, "slept through the result"


@pytest.mark.parametrize(
    "operations, field",
    [
        ('[{"type": "resize"}]', None),
        ('[{"type": "explode"}]', None),
        ("{not json", None),
        ('[{"type": "resize", "width": 0}]', "width"),
        ('[{"type": "blur", "radius": 1, "extra": true}]', None),
    ],
)
@FILE_ONLY
def test_invalid_operations_are_400_and_store_nothing(upload_service, client_for, config, db, operations, field):
    """Operations are refused before the file is read (upload_service.upload), so the store is
    never reached: the folder is enough. Files refused later, once staged, run on both stores
    (test_refused_files_leave_nothing_behind)."""
    client = client_for()
    response = client.upload(HOPPER, operations)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_operations"
    if field:
        assert error["details"]["field"] == field
    assert stored_files(config) == []


@FILE_ONLY
def test_too_many_operations_is_400(upload_service, client_for):
    response = client_for().upload(HOPPER, [{"type": "grayscale"}] * 21)
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_operations"


@pytest.mark.parametrize(
    "content, filename, content_type, status, code",
    [
        (b"this is not an image at all", "photo.jpg", "image/jpeg", 415, "unsupported_media_type"),
        (b"", "empty.png", "image/png", 415, "unsupported_media_type"),
        ((CORPUS_DIR / "bad-images" / "decompression_bomb.gif").read_bytes(), "a.gif", "image/gif", 413, "too_large"),
        ((CORPUS_DIR / "bad-images" / "truncated_jpeg.jpg").read_bytes(), "a.jpg", "image/jpeg", 415, "unsupported_media_type"),
        ((CORPUS_DIR / "bad-images" / "eps_zero_bb.eps").read_bytes(), "a.png", "image/png", 415, "unsupported_media_type"),
    ],
)
def test_refused_files_leave_nothing_behind(upload_service, client_for, config, db, content, filename, content_type, status, code):
    user_id = new_user_id()
    response = client_for(user_id).upload(content, filename=filename, content_type=content_type)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert stored_files(config) == []
    with db.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(Image).where(Image.user_id == user_id)) == 0
    assert client_for().upload(HOPPER).status_code == 202, "the service keeps answering"


@FILE_ONLY
def test_upload_without_exactly_one_file_is_400(upload_service, client_for, web_url):
    import requests

    client = client_for()
    missing = requests.post(f"{web_url}/api/images/upload", headers=client.headers, data={"operations": "[]"})
    assert missing.status_code == 400 and missing.json()["error"]["details"] == {"image": ["Missing file."]}
    content = HOPPER.read_bytes()
    two = requests.post(
        f"{web_url}/api/images/upload",
        headers=client.headers,
        files=[("image", ("a.jpg", content, "image/jpeg")), ("image", ("b.jpg", content, "image/jpeg"))],
    )
    assert two.status_code == 400


@FILE_ONLY
def test_upload_needs_a_token(upload_service, web_url):
    import requests

    response = requests.post(f"{web_url}/api/images/upload", files={"image": ("a.jpg", b"x", "image/jpeg")})
    assert response.status_code == 401 and response.json()["error"]["code"] == "unauthorized"


@FILE_ONLY
def test_list_is_newest_first_and_paginates_with_a_cursor(upload_service, client_for):
    client = client_for()
    ids = [client.upload(HOPPER).json()["image"]["id"] for _ in range(5)]
    first = client.list(limit=2).json()
    assert [image["id"] for image in first["images"]] == ids[::-1][:2]
    second = client.list(limit=2, cursor=first["next_cursor"]).json()
    third = client.list(limit=2, cursor=second["next_cursor"]).json()
    assert [image["id"] for image in second["images"] + third["images"]] == ids[::-1][2:]
    assert third["next_cursor"] is None
    bad = client.list(cursor="garbage!")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "validation_error"
    assert client.list(limit=0).status_code == 400


def test_delete_removes_the_record_and_the_files(upload_service, process_service, client_for, config):
    client = client_for()
    image_id = client.upload(HOPPER).json()["image"]["id"]
    assert client.wait_until_done(image_id)["status"] == "completed"
    assert len(stored_files(config)) == 2
    assert client.delete(image_id).status_code == 204
    assert stored_files(config) == []
    assert client.get(image_id).status_code == 404


@FILE_ONLY
def test_a_long_poll_on_an_image_being_deleted_answers_404_at_once(upload_service, client_for):
    import eventlet

    client = client_for()
    image_id = client.upload(HOPPER).json()["image"]["id"]  # no process_service: it stays queued
    started = time.monotonic()
    poll = eventlet.spawn(client.status, image_id, 30)
    eventlet.sleep(0.5)
    assert client.delete(image_id).status_code == 204
    answer = poll.wait()
    assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_found"
    assert time.monotonic() - started < 5, "woken by the delete, not by the end of its wait"
    assert client.status(image_id, wait=0).status_code == 404


@FILE_ONLY
def test_a_deleted_image_is_not_brought_back_by_a_late_cache_write(upload_service, client_for, redis_url, config):
    """A status read that reached the database before a delete and writes its result back to Redis
    after it must not resurrect the image: the delete leaves a tombstone the write-back respects."""
    from upload_service.models import Image as ImageRow
    from upload_service.status import StatusCache

    client = client_for()
    image_id = client.upload(HOPPER).json()["image"]["id"]
    with make_engine(config["DATABASE_URL"]).connect() as connection:
        row = connection.execute(select(ImageRow.__table__).where(ImageRow.id == image_id)).one()._mapping
    stale = ImageRow(**dict(row))  # what the slow reader got from the database
    assert client.delete(image_id).status_code == 204
    StatusCache(redis.Redis.from_url(redis_url, decode_responses=True)).write_back(stale)
    assert client.status(image_id, wait=0).status_code == 404


VARIANTS = {"thumb": "thumbnail", "small": [{"type": "resize", "width": 32}, {"type": "convert", "format": "webp"}]}


def test_every_variant_is_made_once_stored_and_downloadable_and_deleted(
    upload_service, process_service, client_for, config, db
):
    client = client_for()
    response = client.upload(HOPPER, [{"type": "grayscale"}], variants=json.dumps(VARIANTS))
    assert response.status_code == 202, response.text
    image_id = response.json()["image"]["id"]
    assert client.wait_until_done(image_id)["status"] == "completed"
    done = client.get(image_id).json()["image"]
    assert list(done["variants"]) == ["default", "thumb", "small"], "in request order"
    assert done["output"]["width"] == 128 and done["output"]["format"] == "jpeg", "the default variant"
    expected = {
        "default": ((128, 128), "jpeg", "jpg", "JPEG", "L"),
        "thumb": ((256, 256), "jpeg", "jpg", "JPEG", "RGB"),
        "small": ((32, 32), "webp", "webp", "WEBP", "RGB"),
    }
    names = [f"originals/{image_id}"]
    for variant, (size, output_format, extension, pillow_format, mode) in expected.items():
        name = f"outputs/{image_id}.{variant}.{extension}"
        names.append(name)
        signed_url = done["variants"][variant].pop("url")
        assert signed_url.startswith(f"/media/{image_id}.{variant}.{extension}/"), signed_url
        assert done["variants"][variant] == {
            "width": size[0], "height": size[1], "format": output_format,
            "size_bytes": len(StoreView(config).read(name)),
        }
        with stored_output(config, name) as output:
            assert (output.size, output.format, output.mode) == (size, pillow_format, mode)
        download = client.download(image_id, variant=variant)
        assert download.status_code == 200, download.text
        assert download.headers["X-Accel-Redirect"] == expected_redirect(config, name)
        assert download.headers["Content-Type"] == f"image/{output_format}"
        assert f'filename="photo.{extension}"' in download.headers["Content-Disposition"]
    assert sorted(stored_files(config)) == sorted(names), "one object per variant, nothing else"
    assert client.download(image_id).headers["X-Accel-Redirect"] == expected_redirect(
        config, f"outputs/{image_id}.default.jpg"), "without `variant`, the primary"
    assert client.download(image_id, variant="nope").status_code == 404
    with db.connect() as connection:
        requested, operations = connection.execute(
            select(Image.variants, Image.operations).where(Image.id == image_id)).one()
    assert [variant["name"] for variant in requested] == ["default", "thumb", "small"]
    assert requested[1]["operations"][0]["fit"] == "cover", "the preset, resolved"
    assert operations == [{"type": "grayscale"}], "the primary's, as before"

    assert client.delete(image_id).status_code == 204
    assert stored_files(config) == [], "every variant removed"


def test_a_failing_variant_fails_the_image_naming_it_and_stores_no_output(
    upload_service, process_service, client_for, config
):
    client = client_for()
    variants = {"fine": "thumbnail", "cut": [{"type": "crop", "left": 100, "top": 100, "width": 100, "height": 100}]}
    image_id = client.upload(HOPPER, variants=json.dumps(variants)).json()["image"]["id"]
    status = client.wait_until_done(image_id)
    assert status["status"] == "failed", status
    assert status["error"]["code"] == "invalid_crop"
    assert status["error"]["details"] == {"variant": "cut"}
    assert client.get(image_id).json()["image"]["error"]["details"] == {"variant": "cut"}
    assert stored_files(config) == [f"originals/{image_id}"], "no output of any variant"
    assert client.download(image_id, variant="fine").status_code == 409
    assert spool_files(config) == []


@FILE_ONLY
def test_a_bad_variant_is_400_naming_it_and_stores_nothing(upload_service, client_for, config, db):
    client = client_for()

    def rows():
        with db.connect() as connection:
            return connection.execute(select(func.count()).select_from(Image)).scalar()

    before = rows()
    response = client.upload(HOPPER, [], variants=json.dumps({"default": "thumbnail"}))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_operations"
    assert response.json()["error"]["details"]["variant"] == "default"
    assert stored_files(config) == []
    assert rows() == before


def test_a_failing_pipeline_marks_the_image_failed(upload_service, process_service, client_for):
    client = client_for()
    image_id = client.upload(HOPPER, [{"type": "crop", "left": 100, "top": 100, "width": 100, "height": 100}]).json()[
        "image"
    ]["id"]
    status = client.wait_until_done(image_id)
    assert status["status"] == "failed"
    assert status["error"]["code"] == "invalid_crop"


def test_a_pipeline_that_hangs_fails_its_image_and_its_late_result_is_removed(
    upload_service, container_factory, config, client_for, monkeypatch
):
    """A native thread cannot be stopped: past PROCESSING_TIMEOUT_SECONDS the job stops waiting
    and the image fails; the result the thread writes afterwards is no one's and is removed. It
    must reach neither the store (not even half-written) nor stay in the spool."""
    from process_service import service as process_module

    native = eventlet.patcher.original("threading")  # the pipeline runs in a native thread
    finish, ended = native.Event(), native.Event()
    real_process_variants = process_module.process_variants

    def hanging(*args, **kwargs):
        finish.wait(30)
        try:
            return real_process_variants(*args, **kwargs)
        finally:
            ended.set()

    monkeypatch.setattr(process_module, "process_variants", hanging)
    container = container_factory(ProcessService, {
        **config, "WEB_SERVER_ADDRESS": f"127.0.0.1:{free_port()}", "PROCESSING_TIMEOUT_SECONDS": 1,
    })
    container.start()
    client = client_for()
    image_id = client.upload(HOPPER).json()["image"]["id"]
    status = client.wait_until_done(image_id)
    assert status["status"] == "failed", status
    assert status["error"] == {"code": "processing_timeout", "message": "Processing took longer than 1 s"}

    def late_results():
        return [name for name in StoreView(config).names() if name.startswith(f"outputs/{image_id}")]

    finish.set()  # the pipeline ends after all and writes its result
    deadline = time.monotonic() + 10
    while not (ended.is_set() and not late_results()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ended.is_set() and not late_results(), "the late result was left behind"
    assert partials_of(config, image_id) == [], "nor half of it"
    assert spool_files(config) == [], "nor a local copy of it"
    assert client.status(image_id, wait=0).json()["status"] == "failed"


@FILE_ONLY
def test_a_redelivered_result_changes_nothing_and_announces_once(upload_service, client_for, db):
    client = client_for()
    image_id = client.upload(HOPPER).json()["image"]["id"]
    result = {
        "image_id": image_id,
        "output": {"path": f"outputs/{image_id}.default.jpg", "width": 10, "height": 10, "format": "jpeg", "size_bytes": 99},
    }
    failure = {"image_id": image_id, "error": {"code": "decode_error", "message": "late duplicate"}}
    with entrypoint_hook(upload_service, "on_processed") as on_processed:
        on_processed(result)
        on_processed(result)
    with entrypoint_hook(upload_service, "on_processing_failed") as on_failed:
        on_failed(failure)
    assert client.get(image_id).json()["image"]["status"] == "completed", "a final status never goes back"
    with db.connect() as connection:
        announced = connection.scalar(
            select(func.count()).select_from(OutboxEvent).where(
                OutboxEvent.event_type.in_(["image_completed", "image_failed"]),
                OutboxEvent.payload["image_id"].as_string() == image_id,
            )
        )
    assert announced == 1


@FILE_ONLY
def test_metrics_count_entrypoints_images_and_waiting_work(upload_service, process_service, client_for, web_url):
    import requests

    client = client_for()
    image_id = client.upload(HOPPER, [{"type": "grayscale"}]).json()["image"]["id"]
    assert client.wait_until_done(image_id)["status"] == "completed"
    text = requests.get(f"{web_url}/metrics", timeout=10).text
    assert 'imageproc_entrypoint_calls_total{entrypoint="upload",outcome="ok",service="upload_service"}' in text
    assert 'imageproc_images_finished_total{status="completed"}' in text
    # The database is shared by every test of the run: other tests' pending events count too.
    assert re.search(r'^imageproc_work_waiting\{queue="upload_outbox"\} \d+\.0$', text, re.M)

    process_text = requests.get(f"http://{process_service.config['WEB_SERVER_ADDRESS']}/metrics", timeout=10).text
    assert 'imageproc_operation_duration_seconds_count{operation="grayscale",output_format="jpeg"}' in process_text
    queue = "evt-upload_service-image_uploaded--process_service.process"
    assert f'imageproc_work_waiting{{queue="{queue}"}} 0.0' in process_text


@FILE_ONLY
def test_a_message_a_handler_cannot_handle_is_dead_lettered_and_can_be_replayed(upload_service, config):
    from nameko.standalone.events import event_dispatcher
    from nameko.testing.services import entrypoint_waiter

    from shared import deadletters

    garbage = {"image_id": "not-an-id", "error": {"code": "x", "message": "y"}}
    with entrypoint_waiter(upload_service, "on_processing_failed"):
        event_dispatcher(config)("process_service", "image_processing_failed", garbage)
    letters = deadletters.peek(config)
    assert len(letters) == 1
    assert letters[0]["payload"] == garbage
    assert letters[0]["queue"] == "evt-process_service-image_processing_failed--upload_service.on_processing_failed"
    assert "NotFound" in letters[0]["error"]
    assert deadletters.peek(config) == letters, "peeking leaves them in the queue"

    with entrypoint_waiter(upload_service, "on_processing_failed"):
        assert deadletters.replay(config) == 1
    assert len(deadletters.peek(config)) == 1, "replayed into the handler, which dead-letters it again"


def worker_dies(config, start_processing, image_id, **claim_arguments):
    """The claim's holder stops renewing. The first claim after its lease ran out gives it a last
    chance (upload_service/claims.py); once that is over too, the next claim finds the crash."""
    time.sleep(config["PROCESSING_LEASE_SECONDS"] + 0.1)
    last_chance = claims.last_chance_seconds(config["PROCESSING_LEASE_SECONDS"])
    assert start_processing(image_id, **claim_arguments) == \
        {"proceed": False, "reason": "in_progress", "retry_after": math.ceil(last_chance), "overdue": True}
    time.sleep(last_chance + 0.1)


def test_an_image_whose_processing_keeps_crashing_fails_for_good(upload_service, client_for, config):
    client = client_for()
    image_id = client.upload(HOPPER).json()["image"]["id"]
    lease = config["PROCESSING_LEASE_SECONDS"]
    with entrypoint_hook(upload_service, "start_processing") as start_processing:
        for crash in range(config["MAX_PROCESSING_ATTEMPTS"]):
            claim = start_processing(image_id)
            assert claim["proceed"] and claim["lease_seconds"] == lease, claim
            assert client.status(image_id, wait=0).json()["status"] == "processing"
            # The same message again while the lease runs: someone is on it, ask again later.
            assert start_processing(image_id) == {"proceed": False, "reason": "in_progress", "retry_after": 1}
            worker_dies(config, start_processing, image_id)
        assert start_processing(image_id) == {"proceed": False, "reason": "processing_crashed"}
        assert start_processing(image_id) == {"proceed": False, "reason": "failed"}
    status = client.status(image_id, wait=0).json()
    assert status["status"] == "failed" and status["error"]["code"] == "processing_crashed"
    assert status["error"]["message"] == "Processing stopped 3 times before it could finish"


def test_an_image_in_hand_when_its_worker_died_is_claimed_again_only_to_run_alone(upload_service, client_for, config, db):
    client = client_for()
    image_id = client.upload(HOPPER).json()["image"]["id"]
    with entrypoint_hook(upload_service, "start_processing") as start_processing:
        assert start_processing(image_id, alongside_others=True)["proceed"]
        worker_dies(config, start_processing, image_id, alongside_others=True)
        assert start_processing(image_id, alongside_others=True) == {"proceed": False, "reason": "run_alone"}
        alone = start_processing(image_id, alongside_others=False)
        assert alone["proceed"], alone
    with db.connect() as connection:
        counts = connection.execute(
            select(Image.processing_attempts, Image.processing_crashes).where(Image.id == image_id)
        ).one()
    assert tuple(counts) == (2, 1), "one crash, counted once and kept"


def test_what_a_dead_worker_half_wrote_is_removed_when_its_crash_is_found(upload_service, client_for, config):
    client = client_for()
    image_id, other_id = (client.upload(HOPPER).json()["image"]["id"] for _ in range(2))
    view = StoreView(config)
    with entrypoint_hook(upload_service, "start_processing") as start_processing:
        assert start_processing(image_id)["proceed"]
        for half_written in (image_id, other_id):
            view.write_partial(f"outputs/{half_written}.webp")  # the worker is killed while it writes
        assert start_processing(image_id)["reason"] == "in_progress"
        assert len(partials_of(config, image_id)) == 1, "kept while the lease runs: its writer may be alive"
        worker_dies(config, start_processing, image_id)
        assert len(partials_of(config, image_id)) == 1, "kept during its last chance: it may only be cut off"
        assert start_processing(image_id)["proceed"]
    assert partials_of(config, image_id) == []
    assert len(partials_of(config, other_id)) == 1, "another image's file being written is not touched"


@FILE_ONLY
def test_a_renewed_or_released_claim_is_not_a_crash(upload_service, client_for, config, db):
    client = client_for()
    image_id = client.upload(HOPPER).json()["image"]["id"]
    lease = config["PROCESSING_LEASE_SECONDS"]
    with entrypoint_hook(upload_service, "start_processing") as start_processing, \
            entrypoint_hook(upload_service, "renew_processing") as renew, \
            entrypoint_hook(upload_service, "release_processing") as release:
        token = start_processing(image_id)["claim"]
        for _ in range(3):  # a long job: renewed past several leases
            time.sleep(lease / 2)
            assert renew(image_id, token) is True
        assert start_processing(image_id)["reason"] == "in_progress"
        # Cut off for longer than a lease (a broker outage): the next claim gives it a last
        # chance, in which its renewal keeps the claim and no crash is counted.
        time.sleep(lease + 0.1)
        assert start_processing(image_id)["reason"] == "in_progress"
        assert renew(image_id, token) is True
        time.sleep(claims.last_chance_seconds(lease) + 0.1)
        assert start_processing(image_id)["reason"] == "in_progress", "renewed: still its holder's"
        assert renew(image_id, "someone-else") is False
        assert release(image_id, "someone-else") is False
        assert release(image_id, token) is True  # a transient failure: the retry may start at once
        again = start_processing(image_id)
        assert again["proceed"] and again["claim"] != token
        assert renew(image_id, token) is False, "the old claim is gone"
    with db.connect() as connection:
        counts = connection.execute(
            select(Image.processing_attempts, Image.processing_crashes).where(Image.id == image_id)
        ).one()
    assert tuple(counts) == (2, 0)


def test_a_duplicate_upload_event_does_not_process_a_finished_image_again(
    upload_service, process_service, client_for, config
):
    """The output is replaced by a marker the pipeline cannot produce: processed again, it would be
    overwritten. (Modification times cannot tell: S3's have a resolution of a second.)"""
    from nameko.standalone.events import event_dispatcher
    from nameko.testing.services import entrypoint_waiter

    client = client_for()
    accepted = client.upload(HOPPER, [{"type": "grayscale"}]).json()["image"]
    assert client.wait_until_done(accepted["id"])["status"] == "completed"
    output, marker = f"outputs/{accepted['id']}.default.jpg", b"not written by a pipeline"
    view = StoreView(config)
    assert view.exists(output)
    view.write(output, marker)
    duplicate = {
        "image_id": accepted["id"], "user_id": "x", "original_path": f"originals/{accepted['id']}",
        "format": "jpeg", "width": 128, "height": 128, "operations": [{"type": "grayscale"}],
    }
    with entrypoint_waiter(process_service, "process"):
        event_dispatcher(config)("upload_service", "image_uploaded", duplicate)
    assert view.read(output) == marker, "not processed again"
    assert view.names() == [f"originals/{accepted['id']}", output]


@FILE_ONLY
def test_other_services_refuse_revoked_tokens_even_when_redis_forgets(
    container_factory, upload_service, config, web_url, redis_url
):
    import redis as redis_client
    import requests

    from user_service.service import UserService

    users_url = f"127.0.0.1:{free_port()}"
    users = container_factory(UserService, {**config, "WEB_SERVER_ADDRESS": users_url})
    users.start()
    email = f"rev.{os.urandom(4).hex()}@example.com"
    requests.post(f"http://{users_url}/api/users/signup", json={"name": "R", "email": email, "password": "password123"})
    token = requests.post(f"http://{users_url}/api/users/login", json={"email": email, "password": "password123"}).json()[
        "access_token"
    ]
    client = ImagesClient(web_url, token)
    with entrypoint_hook(users, "mirror_revocations") as mirror:
        mirror()
    assert client.list().status_code == 200
    requests.post(f"http://{users_url}/api/users/logout", headers=client.headers)
    assert client.list().status_code == 401, "seen in the Redis mirror"
    redis_client.Redis.from_url(redis_url).flushdb()
    refused = client.list()
    assert refused.status_code == 401, "asked user_service over RPC"
    assert refused.json()["error"]["code"] == "unauthorized"


@FILE_ONLY
def test_when_no_one_can_tell_whether_a_token_is_revoked_the_answer_is_503(upload_service, client_for, redis_url):
    client = client_for()
    redis.Redis.from_url(redis_url).delete(LOADED_KEY)  # the mirror is gone and user_service is not running
    response = client.list()
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "service_unavailable"


def test_the_sweeper_removes_what_a_crash_left_behind_and_nothing_else(
    upload_service, client_for, config, monkeypatch
):
    """Ages cannot be set on S3 (the server sets LastModified), so objects are made old by
    waiting: the sweeper's minimum age is lowered to `min_age` and the fresh ones are written
    `wait` later. A listing's times are whole seconds on S3, a second off either way, so the old
    ones are swept more than `min_age` + 1 s after they were written, and the fresh ones, swept
    at once, stay younger than `min_age` - 1 s."""
    import uuid as uuid_module

    from nameko.testing.services import entrypoint_hook as hook

    min_age, wait = 1.5, 2.6
    client = client_for()
    kept, failed = (client.upload(HOPPER).json()["image"]["id"] for _ in range(2))
    with hook(upload_service, "on_processing_failed") as report_failure:
        report_failure({"image_id": failed, "error": {"code": "processing_timeout", "message": "too slow"}})
    view = StoreView(config)
    orphan_original = f"originals/{uuid_module.uuid4()}"
    orphan_output = f"outputs/{uuid_module.uuid4()}.png"
    late_result = f"outputs/{failed}.png"  # written by a worker after its image had failed
    pending_result = f"outputs/{kept}.png"  # its image_processed event may still be queued
    old_partial, fresh_partial = str(uuid_module.uuid4()), str(uuid_module.uuid4())
    fresh_orphan = f"originals/{uuid_module.uuid4()}"
    for name in (orphan_original, orphan_output, late_result, pending_result):
        view.write(name, b"x")
    view.write_partial(f"originals/{old_partial}")
    time.sleep(wait)  # everything so far, the uploads' originals too, is old now
    view.write(fresh_orphan, b"x")
    view.write_partial(f"originals/{fresh_partial}")  # an upload in progress
    monkeypatch.setattr(upload_module, "ORPHAN_MIN_AGE_SECONDS", min_age)
    with hook(upload_service, "sweep_storage") as sweep:
        sweep()
    stored = view.names()
    for name in (orphan_original, orphan_output, late_result):
        assert name not in stored, name
    assert partials_of(config, old_partial) == []
    assert fresh_orphan in stored, "too young: might be an upload in progress"
    assert len(partials_of(config, fresh_partial)) == 1, "too young: might be an upload in progress"
    for name in (f"originals/{kept}", f"originals/{failed}", pending_result):
        assert name in stored, f"{name}: an image's own file stays"
    assert len(stored) == 4


@FILE_ONLY
def test_presets_are_listed_to_a_signed_in_user_as_configured(container_factory, config, client_for, web_url):
    import requests

    operators = {"square": [{"type": "resize", "width": 300, "height": 300, "fit": "cover"}], "gray": [{"type": "grayscale"}]}
    container_factory(UploadService, {**config, "presets": operators}).start()

    assert requests.get(f"{web_url}/api/presets", timeout=10).status_code == 401
    response = client_for().presets()
    assert response.status_code == 200
    assert response.json() == {"presets": operators}
