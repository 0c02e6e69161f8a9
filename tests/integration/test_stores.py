"""Both stores through the one interface (shared/storage), the object store against the real
SeaweedFS with SigV4 identities: what services and the sweeper rely on, the same on both."""
import os
import time
import uuid

import botocore.exceptions
import pytest

from shared import errors
from shared.storage import ObjectMissing, open_store
from tests.conftest import STORE_KINDS
from tests.support.stored import StoreView


@pytest.fixture(params=STORE_KINDS)
def storage_backend(request):
    return request.param


@pytest.fixture
def store(config):
    return open_store(config)


def test_a_staged_upload_reaches_the_store_only_on_commit_and_leaves_no_local_file(store, config):
    view = StoreView(config)
    name = f"originals/{uuid.uuid4()}"
    with store.staged(name) as staged:
        staged.path.write_bytes(b"jpeg bytes")
        assert view.names() == []
        staged.commit(content_type="image/jpeg")
    assert view.names() == [name] and view.read(name) == b"jpeg bytes"
    assert not staged.path.exists()
    with pytest.raises(RuntimeError), store.staged(f"originals/{uuid.uuid4()}") as refused:
        refused.path.write_bytes(b"refused")
        raise RuntimeError("the upload was refused")
    assert view.names() == [name] and not refused.path.exists()


def test_a_large_file_goes_up_in_parts_and_comes_back_identical(store, config):
    data = os.urandom(20 * 1024 * 1024 + 123)
    with store.spool.file() as local:
        local.write_bytes(data)
        store.put_file(local, "outputs/big.png", content_type="image/png")
        assert not local.exists(), "put_file takes the local file"
    with store.fetched("outputs/big.png") as path:
        assert path.read_bytes() == data
    if store.kind == "s3":
        head = store.client.head_object(Bucket=store.bucket, Key=store.location.key("outputs/big.png"),
                                        ChecksumMode="ENABLED")
        assert head["ETag"].endswith('-3"'), "three 8 MiB parts"
        assert head["ContentType"] == "image/png" and head.get("ChecksumCRC32")
        assert not path.exists(), "the fetched copy is a spool file of the block only"


def test_what_is_not_stored_is_object_missing(store):
    with pytest.raises(ObjectMissing), store.fetched(f"originals/{uuid.uuid4()}"):
        pass


def test_remove_takes_every_name_and_ignores_what_is_gone(store, config):
    view = StoreView(config)
    names = [f"originals/{uuid.uuid4()}", f"outputs/{uuid.uuid4()}.webp"]
    for name in names:
        view.write(name, b"x")
    store.remove(*names, None, f"outputs/{uuid.uuid4()}.png")
    assert view.names() == []


def test_half_written_objects_are_listed_as_partial_and_removed_per_image(store, config):
    view = StoreView(config)
    mine, theirs = uuid.uuid4(), uuid.uuid4()
    view.write_partial(f"outputs/{mine}.webp")
    view.write_partial(f"originals/{theirs}")
    assert len(view.partials()) == 2 and view.names() == []
    store.remove_partials(mine)
    assert len(view.partials()) == 1
    (left,) = [stored for stored in store.listing("originals") if stored.partial]
    assert abs(left.modified - time.time()) < 60
    store.remove_listed(left)
    assert view.partials() == []


def test_listings_are_per_folder_with_modification_times(store, config):
    view = StoreView(config)
    view.write("originals/a", b"1")
    view.write("outputs/a.png", b"22")
    assert [s.name for s in store.listing("originals")] == ["originals/a"]
    assert [s.name for s in store.listing("outputs")] == ["outputs/a.png"]
    assert all(abs(s.modified - time.time()) < 60 for s in store.listing("outputs"))


def test_the_health_check_passes(store):
    store.check()


@pytest.mark.parametrize("storage_backend", ["s3"])
def test_requests_are_signed_a_wrong_key_is_refused_and_the_gateway_key_only_reads(seaweedfs, store, config):
    StoreView(config).write("outputs/signed.png", b"png")
    key = store.location.key("outputs/signed.png")
    wrong = seaweedfs.client(secret_key="not-the-secret")
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        wrong.get_object(Bucket=store.bucket, Key=key)
    assert refused.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    import requests

    assert requests.get(f"{seaweedfs.endpoint}/{store.bucket}/{key}", timeout=5).status_code == 403, "anonymous"
    gateway = seaweedfs.client(seaweedfs.keys["GATEWAY_S3_ACCESS_KEY_ID"], seaweedfs.keys["GATEWAY_S3_SECRET_ACCESS_KEY"])
    assert gateway.get_object(Bucket=store.bucket, Key=key)["Body"].read() == b"png"
    with pytest.raises(botocore.exceptions.ClientError) as read_only:
        gateway.put_object(Bucket=store.bucket, Key=key, Body=b"overwritten")
    assert read_only.value.response["Error"]["Code"] == "AccessDenied"
    assert store.gateway_location("outputs/signed.png") == f"/_objects/{key}"


@pytest.mark.parametrize("storage_backend", ["s3"])
def test_an_unreachable_store_is_service_unavailable_within_the_timeout(seaweedfs, config, monkeypatch):
    from tests.support.processes import free_port

    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{free_port()}")  # nothing listens
    store = open_store({**config, "STORAGE_TIMEOUT_SECONDS": 2})
    started = time.monotonic()
    with pytest.raises(errors.ServiceUnavailable) as unavailable:
        with store.staged("originals/x") as staged:
            staged.path.write_bytes(b"x")
            staged.commit()
    assert time.monotonic() - started < 10
    assert unavailable.value.details == {"dependency": "storage", "store": store.url}
    assert not staged.path.exists()
    with pytest.raises(errors.ServiceUnavailable):
        store.check()
