"""The mail server is down for a while, then back: every email is delivered, exactly once."""
import time

import eventlet
import pytest

pytestmark = pytest.mark.faults

DOWN_SECONDS = 12


def test_mail_held_back_while_smtp_is_down_is_delivered_exactly_once(faults):
    faults.smtp.stop()
    stopped = time.monotonic()
    account = faults.users.account("Unmailed")  # its welcome email cannot be sent yet
    uploads = faults.users.upload_stream(account, 5, 0.1, "unmailed", fail_every=3)()
    assert all(u.accepted for u in uploads), uploads
    for upload in uploads:
        faults.records.wait_until_final(upload.image_id, timeout=30)
    assert not faults.mailbox.to(account.email), "mail arrived while the mail server was down"
    eventlet.sleep(max(0, DOWN_SECONDS - (time.monotonic() - stopped)))
    faults.smtp.start()

    faults.verify([account], uploads, timeout=30)
