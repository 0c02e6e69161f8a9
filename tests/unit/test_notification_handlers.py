"""NotificationService's handlers with the mailer and user_service replaced."""
import itertools
from unittest import mock

import pytest
import redis
from nameko.testing.services import worker_factory

from notification_service.dependencies import Reservation, SentLog
from notification_service.mailer import MailDeliveryError
from notification_service.service import NotificationService, absolute_url, public_base_url
from shared import errors
from shared.delivery import RETRY_LIMIT, DeliveryInfo, Retry

CONFIG = {"MAIL_FROM": "Image Service <no-reply@imageproc.example>", "PUBLIC_BASE_URL": "https://images.example/"}
USER = {"id": "0b5e6d4c-3a2b-4c1d-8e9f-1a2b3c4d5e6f", "name": "Ada", "email": "ada@example.com",
        "created_at": "2024-05-01T12:00:00+00:00"}
IMAGE_ID = "6f1c0f0e-1b2a-4c3d-9e8f-0a1b2c3d4e5f"
COMPLETED = {
    "image_id": IMAGE_ID, "user_id": USER["id"], "original_filename": "cat.png",
    "output": {"width": 64, "height": 48, "format": "png", "size_bytes": 1000,
               "download_url": f"/api/images/{IMAGE_ID}/download"},
}
FAILED = {"image_id": IMAGE_ID, "user_id": USER["id"], "original_filename": "cat.png",
          "error": {"code": "too_large", "message": "The result would be too large"}}
REGISTERED = {"user_id": USER["id"], "id": USER["id"], "name": "Ada", "email": "ada@example.com",
              "created_at": USER["created_at"]}


class MemorySentLog:
    """notification_service.dependencies.SentLog's rules, in memory (the real one is tested against
    Redis in tests/integration/test_notification_service.py)."""

    def __init__(self):
        self.records = {}  # Message-ID: "sent", or the token of the worker sending it
        self.tokens = itertools.count()

    def reserve(self, message_id):
        record = self.records.get(message_id)
        if record is not None:
            return Reservation("sent" if record == "sent" else "elsewhere")
        self.records[message_id] = f"sending:{next(self.tokens)}"
        return Reservation("mine", self.records[message_id])

    def mark_sent(self, message_id):
        self.records[message_id] = "sent"

    def release(self, message_id, reservation):
        if self.records.get(message_id) == reservation.token:
            del self.records[message_id]


def delivery(retries=0):
    info = DeliveryInfo(retries, config={}, queue_name="evt-queue")
    info.dead_letter = mock.Mock(name="dead_letter")
    return info


@pytest.fixture
def service():
    users = mock.Mock(name="users")
    users.get_user.return_value = USER
    return worker_factory(
        NotificationService,
        config=CONFIG,
        mailer=mock.Mock(name="mailer"),
        users=users,
        sent=MemorySentLog(),
        delivery=delivery(),
    )


def sent(service):
    assert service.mailer.send.call_count == 1
    return service.mailer.send.call_args.args[0]


def test_user_registered_sends_the_welcome_email_without_asking_user_service(service):
    service.send_welcome(REGISTERED)
    message = sent(service)
    assert message["To"].addresses[0].addr_spec == "ada@example.com"
    assert message["From"] == CONFIG["MAIL_FROM"]
    assert message["Message-ID"] == f"<welcome.{USER['id']}@imageproc.example>"
    service.users.get_user.assert_not_called()


def test_image_completed_asks_user_service_for_the_owner_and_links_the_download(service):
    service.send_image_ready(COMPLETED)
    service.users.get_user.assert_called_once_with(USER["id"])
    message = sent(service)
    assert message["To"].addresses[0].addr_spec == "ada@example.com"
    assert message["Subject"] == 'Your image "cat.png" is ready'
    text = message.get_body(("plain",)).get_content()
    assert f"https://images.example/api/images/{IMAGE_ID}/download" in text


def test_image_failed_sends_the_reason(service):
    service.send_image_failed(FAILED)
    message = sent(service)
    assert message["Message-ID"] == f"<image-failed.{IMAGE_ID}@imageproc.example>"
    assert "The result would be too large" in message.get_body(("plain",)).get_content()


@pytest.mark.parametrize("handler, payload", [("send_image_ready", COMPLETED), ("send_image_failed", FAILED)])
@pytest.mark.parametrize("error", [errors.NotFound("No user"), errors.ValidationError("bad id")])
def test_an_owner_that_no_longer_exists_is_logged_and_dropped(service, handler, payload, error, caplog):
    service.users.get_user.side_effect = error
    getattr(service, handler)(payload)  # returns: the event is acked, not retried
    service.mailer.send.assert_not_called()
    assert "owner no longer exists" in caplog.text


def test_user_service_unavailable_is_retried_later(service):
    service.users.get_user.side_effect = errors.ServiceUnavailable("user_service did not answer in time")
    with pytest.raises(Retry):
        service.send_image_ready(COMPLETED)
    service.mailer.send.assert_not_called()


def test_a_transient_delivery_failure_is_retried_later(service):
    service.mailer.send.side_effect = MailDeliveryError("welcome mail <welcome.x@y>: SMTPDataError 421")
    with pytest.raises(Retry):
        service.send_welcome(REGISTERED)


def test_a_permanent_delivery_failure_is_not_retried(service):
    service.mailer.send.side_effect = MailDeliveryError("welcome mail: 550 no such user", permanent=True)
    with pytest.raises(MailDeliveryError):
        service.send_welcome(REGISTERED)


def test_after_the_last_retry_the_event_is_dead_lettered(service):
    service.delivery = delivery(retries=RETRY_LIMIT)
    service.mailer.send.side_effect = MailDeliveryError("SMTP down")
    service.send_welcome(REGISTERED)
    service.delivery.dead_letter.assert_called_once()
    assert service.delivery.dead_letter.call_args.args[0] == REGISTERED


@pytest.mark.parametrize("handler, payload", [
    ("send_welcome", {**REGISTERED, "email": None}),
    ("send_welcome", {**REGISTERED, "email": "two@example.com, addresses@example.com"}),
    ("send_image_ready", {**COMPLETED, "user_id": None}),
    ("send_image_failed", {**FAILED, "image_id": None}),
])
def test_malformed_events_are_logged_and_dropped(service, handler, payload, caplog):
    getattr(service, handler)(payload)
    service.mailer.send.assert_not_called()
    assert "dropped" in caplog.text


def test_an_owner_with_an_unusable_address_is_dropped(service, caplog):
    service.users.get_user.return_value = {**USER, "email": "not an address"}
    service.send_image_failed(FAILED)
    service.mailer.send.assert_not_called()
    assert "dropped" in caplog.text and "not an address" not in caplog.text


def test_a_redelivered_event_sends_no_second_email(service):
    service.send_image_ready(COMPLETED)
    service.send_image_ready(COMPLETED)
    assert service.mailer.send.call_count == 1
    assert service.mailer.send.call_args.args[0]["Message-ID"] == f"<image-ready.{IMAGE_ID}@imageproc.example>"


def test_an_email_another_worker_is_sending_is_retried_later_not_sent_twice(service):
    """The same event delivered twice at once (a publish the broker took twice)."""
    service.sent.reserve(f"<image-ready.{IMAGE_ID}@imageproc.example>")  # the other worker's reservation
    with pytest.raises(Retry):
        service.send_image_ready(COMPLETED)
    service.mailer.send.assert_not_called()


def test_a_permanently_refused_email_is_not_marked_sent(service):
    """So that replaying its dead letter (once the address is fixed) sends it."""
    service.mailer.send.side_effect = [MailDeliveryError("no such user", permanent=True), None]
    with pytest.raises(MailDeliveryError):
        service.send_image_ready(COMPLETED)
    service.send_image_ready(COMPLETED)
    assert service.mailer.send.call_count == 2


def test_an_email_that_failed_is_sent_when_the_event_comes_back(service):
    service.mailer.send.side_effect = [MailDeliveryError("SMTP down"), None]
    with pytest.raises(Retry):
        service.send_image_ready(COMPLETED)
    service.send_image_ready(COMPLETED)
    assert service.mailer.send.call_count == 2


def test_public_base_url_defaults_to_the_local_gateway():
    assert public_base_url({}) == "http://127.0.0.1:8080"
    assert public_base_url({"GATEWAY_PORT": 9090}) == "http://127.0.0.1:9090"
    assert public_base_url({"PUBLIC_BASE_URL": "https://x.example/"}) == "https://x.example"


def test_download_paths_become_absolute_urls():
    config = {"PUBLIC_BASE_URL": "https://x.example/"}
    assert absolute_url(config, "/api/images/1/download") == "https://x.example/api/images/1/download"
    assert absolute_url(config, "https://cdn.example/1") == "https://cdn.example/1"


def test_health_reports_each_dependency(service):
    service.config = {"AMQP_URI": "memory://"}
    service.mailer.check.side_effect = OSError("refused")
    with mock.patch("notification_service.service.check_amqp", return_value=lambda: None):
        report = service.health()
    assert report == {"service": "notification_service", "status": "unavailable",
                      "checks": {"amqp": "ok", "smtp": "error: OSError"}}


class SlowRedis:
    """Redis as a busy host answers it: some replies come too late (the command itself applied,
    or not, as the real server would have done it)."""

    def __init__(self, late_replies):
        self.values = {}
        self.late_replies = late_replies

    def register_script(self, script):
        return None

    def _reply(self, value):
        if self.late_replies:
            self.late_replies -= 1
            raise redis.TimeoutError("Timeout reading from socket")
        return value

    def set(self, key, value, nx=False, ex=None):
        applied = not (nx and key in self.values)
        if applied:
            self.values[key] = value
        return self._reply(applied or None)

    def get(self, key):
        return self._reply(self.values.get(key))


def test_a_late_redis_reply_does_not_send_an_email_twice():
    client = SlowRedis(late_replies=0)
    first = SentLog(client).reserve("<welcome.1@x>")
    client.late_replies = 1  # the second delivery's SET NX fails against the first's, its reply late
    second = SentLog(client).reserve("<welcome.1@x>")
    assert (first.state, second.state) == ("mine", "elsewhere")

    client = SlowRedis(late_replies=1)  # our own SET applied, its reply lost: still ours
    mine = SentLog(client).reserve("<welcome.2@x>")
    assert mine.state == "mine" and client.values["mail-sent:<welcome.2@x>"] == mine.token

    client = SlowRedis(late_replies=10)  # no answer at all: send anyway (a duplicate beats a loss)
    assert SentLog(client).reserve("<welcome.3@x>").state == "mine"


@pytest.mark.parametrize("handler, payload", [("send_image_ready", COMPLETED), ("send_image_failed", FAILED)])
def test_an_owner_on_the_event_is_written_to_without_asking_user_service(service, handler, payload):
    """shared/owner.py: the address travels with the image; the RPC is only the fallback."""
    getattr(service, handler)({**payload, "owner": {"name": "Grace", "email": "grace@example.com"}})
    service.users.get_user.assert_not_called()
    message = sent(service)
    assert message["To"].addresses[0].addr_spec == "grace@example.com"
    assert message["To"].addresses[0].display_name == "Grace"


@pytest.mark.parametrize("owner", [None, {}, {"name": "Grace"}, {"email": ""}, "grace@example.com"])
def test_an_event_without_a_usable_owner_asks_user_service(service, owner):
    service.send_image_ready({**COMPLETED, "owner": owner})
    service.users.get_user.assert_called_once_with(USER["id"])
    assert sent(service)["To"].addresses[0].addr_spec == "ada@example.com"
