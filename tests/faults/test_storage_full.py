"""The storage volume (STORAGE_DIR, a small tmpfs here) fills up.

An upload that does not fit is refused with 507 `insufficient_storage` in JSON and leaves no row,
no file and no partial file; once space is freed, uploads work again. An accepted image whose
result does not fit is not lost: it completes once there is room again, like any transient failure."""
import eventlet
import pytest

from tests.faults.users import noise_image
from tests.support.servers import fill

pytestmark = pytest.mark.faults


def test_a_full_volume_refuses_uploads_with_507_and_stores_nothing(faults):
    account = faults.users.account("Full")
    photo = noise_image(11, (2400, 1600), "JPEG", quality=95)
    assert len(photo) > 512 * 1024
    stored_before = faults.records.stored_files()

    filler = fill(faults.storage_dir, leave_bytes=256 * 1024)
    refused = [faults.users.upload(account, photo, [{"type": "resize", "width": 300}], f"refused-{n}.jpg") for n in range(3)]
    stored_meanwhile = faults.records.stored_files()
    temporary = [p.name for p in (faults.storage_dir / "originals").iterdir() if p.name.startswith(".")]
    filler.unlink()

    for upload in refused:
        assert upload.json_problem is None, upload.json_problem
        assert (upload.status_code, upload.error_code) == (507, "insufficient_storage"), upload
    assert stored_meanwhile == stored_before and not temporary, "a refused upload left a file behind"

    accepted = faults.users.upload(account, photo, [{"type": "resize", "width": 300}], "accepted.jpg")
    assert accepted.accepted, accepted
    faults.verify([account], [*refused, accepted], timeout=30, ambiguous_ok=False)


def test_a_result_that_does_not_fit_waits_for_room_instead_of_failing(faults):
    account = faults.users.account("Cramped")
    photo = noise_image(12, (1500, 1500), "JPEG", quality=80)
    operations = [{"type": "convert", "format": "png"}]  # a result several times the original's size
    expected = faults.references.expected(photo, operations)
    assert expected["status"] == "completed"

    filler = fill(faults.storage_dir, leave_bytes=len(photo) + 256 * 1024)
    upload = faults.users.upload(account, photo, operations, "cramped.jpg")
    assert upload.accepted, upload
    eventlet.sleep(3)  # process_service tries to write the result into the full volume
    filler.unlink()

    faults.verify([account], [upload], timeout=90)
