"""notification_service against the real broker and a real SMTP server (the `smtp_sink` process):
events in, mail out, as the contract says."""
import time
import uuid

import pytest
import requests
from nameko.standalone.events import event_dispatcher
from nameko.testing.services import entrypoint_hook, entrypoint_waiter, replace_dependencies

from notification_service.service import NotificationService
from shared.delivery import Retry
from tests.conftest import start_smtp_sink
from tests.support.processes import free_port
from tests.support.mailbox import Mailbox
from user_service.service import UserService

MAIL_FROM = "Image Service <no-reply@imageproc.example>"


def unique_email(prefix="ada"):
    return f"{prefix}.{uuid.uuid4().hex[:8]}@example.com"


def notification_config(config, smtp_url):
    # Its own HTTP port: two @http services in one process must not share one.
    return {**config, "SMTP_URL": smtp_url, "MAIL_FROM": MAIL_FROM,
            "PUBLIC_BASE_URL": "https://images.example", "WEB_SERVER_ADDRESS": f"127.0.0.1:{free_port()}"}


@pytest.fixture
def start_notifications(container_factory, config):
    def start(smtp_url, users=None):
        container = container_factory(NotificationService, notification_config(config, smtp_url))
        if users is not None:
            replace_dependencies(container, users=users)
        container.start()
        return container

    return start


@pytest.fixture
def user_service(container_factory, config):
    container = container_factory(UserService, config)
    container.start()
    return container


def signup(web_url, email, name="Ada"):
    response = requests.post(f"{web_url}/api/users/signup",
                             json={"name": name, "email": email, "password": "correct horse battery"})
    assert response.status_code == 201, response.text
    return response.json()["user"]


def parts(message):
    return {part.get_content_type(): part.get_content() for part in message.iter_parts()}


def message_id(message):
    # A long Message-ID is folded onto its own line; the parsed value keeps the folding space.
    return str(message["Message-ID"]).strip()


def with_message_id(messages, prefix):
    return [message for message in messages if message_id(message).startswith(prefix)]


def waits_for(key, value):
    """An entrypoint_waiter callback for the worker that handled this event (not an older one)."""
    return lambda worker_ctx, result, exc_info: worker_ctx.args[0].get(key) == value


def test_signup_sends_a_welcome_email_over_smtp(start_notifications, user_service, smtp_sink, web_url):
    start_notifications(smtp_sink.url)
    email = unique_email()
    user = signup(web_url, email, name="Ada Lovelace")

    message, = smtp_sink.mailbox.wait_for(email)
    assert message["Subject"] == "Welcome to Image Service"
    assert message["From"] == MAIL_FROM
    assert [(a.display_name, a.addr_spec) for a in message["To"].addresses] == [("Ada Lovelace", email)]
    assert message_id(message) == f"<welcome.{user['id']}@imageproc.example>"
    assert message["Date"] is not None
    text, html = parts(message)["text/plain"], parts(message)["text/html"]
    assert "Ada Lovelace" in text and email in text and "Ada Lovelace" in html


def test_a_completed_image_emails_its_owner_with_the_address_from_user_service(
    start_notifications, user_service, smtp_sink, web_url, config
):
    notifications = start_notifications(smtp_sink.url)
    email = unique_email()
    user = signup(web_url, email, name="Grace")
    image_id = str(uuid.uuid4())
    event = {
        "image_id": image_id, "user_id": user["id"], "original_filename": "<holiday>.png",
        "output": {"width": 800, "height": 600, "format": "webp", "size_bytes": 52000,
                   "download_url": f"/api/images/{image_id}/download"},
    }

    with entrypoint_waiter(notifications, "send_image_ready", callback=waits_for("image_id", image_id)) as result:
        event_dispatcher(config)("upload_service", "image_completed", event)
    assert result.get() is None

    ready, = with_message_id(smtp_sink.mailbox.wait_for(email, count=2), "<image-ready.")
    assert message_id(ready) == f"<image-ready.{image_id}@imageproc.example>"
    assert ready["Subject"] == 'Your image "<holiday>.png" is ready'
    assert [(a.display_name, a.addr_spec) for a in ready["To"].addresses] == [("Grace", email)]
    text, html = parts(ready)["text/plain"], parts(ready)["text/html"]
    assert "800 x 600" in text and "WEBP" in text
    assert f"https://images.example/api/images/{image_id}/download" in text
    assert "&lt;holiday&gt;.png" in html and "<holiday>" not in html


def test_a_failed_image_emails_its_owner(start_notifications, smtp_sink):
    email = unique_email("grace")
    users = StubUsers({"id": str(uuid.uuid4()), "name": "Grace", "email": email})
    notifications = start_notifications(smtp_sink.url, users=users)
    image_id = str(uuid.uuid4())
    event = {"image_id": image_id, "user_id": users.user["id"], "original_filename": "scan.tiff",
             "error": {"code": "invalid_crop", "message": "The crop lies outside the image"}}

    with entrypoint_hook(notifications, "send_image_failed") as send_image_failed:
        send_image_failed(event)

    message, = smtp_sink.mailbox.wait_for(email)
    assert users.asked == [users.user["id"]]
    assert message_id(message) == f"<image-failed.{image_id}@imageproc.example>"
    assert message["Subject"] == 'Your image "scan.tiff" could not be processed'
    assert "The crop lies outside the image" in parts(message)["text/plain"]
    assert "invalid_crop" in parts(message)["text/html"]


def test_an_image_whose_owner_is_gone_sends_nothing(start_notifications, user_service, smtp_sink, config):
    notifications = start_notifications(smtp_sink.url)
    image_id = str(uuid.uuid4())
    event = {"image_id": image_id, "user_id": str(uuid.uuid4()), "original_filename": "a.png",
             "error": {"code": "too_large", "message": "Too large"}}

    with entrypoint_waiter(notifications, "send_image_failed", callback=waits_for("image_id", image_id)) as result:
        event_dispatcher(config)("upload_service", "image_failed", event)
    assert result.get() is None, "logged and dropped, not raised"
    assert not [m for m in smtp_sink.mailbox.messages() if image_id in message_id(m)]


def test_without_smtp_url_the_mail_lands_in_the_outbox_folder(start_notifications, config):
    notifications = start_notifications(None)
    email = unique_email()
    user_id = str(uuid.uuid4())

    with entrypoint_hook(notifications, "send_welcome") as send_welcome:
        send_welcome({"user_id": user_id, "id": user_id, "name": "Ada", "email": email,
                      "created_at": "2024-05-01T12:00:00+00:00"})
        send_welcome({"user_id": user_id, "id": user_id, "name": "Ada", "email": email,
                      "created_at": "2024-05-01T12:00:00+00:00"})  # a redelivery

    outbox = Mailbox(config["MAIL_OUTBOX_DIR"])
    message, = outbox.to(email)
    assert message_id(message) == f"<welcome.{user_id}@imageproc.example>"
    assert set(parts(message)) == {"text/plain", "text/html"}
    # Other tests' events may still be queued for this service: look at this user's file only.
    files = [path.name for path in outbox.folder.iterdir() if user_id in path.name]
    assert files == [f"welcome.{user_id}_imageproc.example.eml"], "one file, no temporary left"
    assert not list(outbox.folder.glob(".*.tmp"))


def test_mail_waits_for_a_server_that_is_down_then_goes_exactly_once(start_notifications, config, tmp_path):
    port = free_port()
    start_notifications(f"smtp://127.0.0.1:{port}")  # nobody listens there yet
    email = unique_email()
    dispatch = event_dispatcher(config)
    dispatch("user_service", "user_registered", {"user_id": str(uuid.uuid4()), "name": "Ada", "email": email})
    time.sleep(2)  # the first attempts fail; the event waits in the broker's delay queues
    mailbox_dir = tmp_path / "late-sink"
    sink = start_smtp_sink(port, mailbox_dir)
    try:
        mailbox = Mailbox(mailbox_dir)
        mailbox.wait_for(email, timeout=30)
        time.sleep(2)
        assert len(mailbox.to(email)) == 1, "delivered exactly once"
    finally:
        sink.terminate()
        sink.wait(timeout=10)


def test_one_event_delivered_twice_at_once_sends_one_email(start_notifications, smtp_sink, config):
    """A publish the broker took twice (a publisher cut off mid-confirm sends again): both copies
    reach two workers at the same moment; one sends, the other comes back later and finds it sent."""
    start_notifications(smtp_sink.url)
    email = unique_email()
    payload = {"user_id": str(uuid.uuid4()), "name": "Ada", "email": email}
    dispatch = event_dispatcher(config)
    for _ in range(2):
        dispatch("user_service", "user_registered", payload)
    smtp_sink.mailbox.wait_for(email)
    time.sleep(3)  # the second copy's retry (after about a second) has come and gone
    assert len(smtp_sink.mailbox.to(email)) == 1


def test_the_sent_mail_log_lets_one_worker_send_and_gives_a_failed_reservation_back(config):
    import redis

    from notification_service.dependencies import SentLog

    sent = SentLog(redis.Redis.from_url(config["REDIS_URL"], decode_responses=True))
    message_id = f"<welcome.{uuid.uuid4()}@imageproc.example>"
    first, second = sent.reserve(message_id), sent.reserve(message_id)
    assert (first.state, second.state) == ("mine", "elsewhere")
    sent.release(message_id, second)  # not its reservation: nothing happens
    assert sent.reserve(message_id).state == "elsewhere"
    sent.release(message_id, first)  # the send failed: the next delivery may send
    retry = sent.reserve(message_id)
    assert retry.state == "mine"
    sent.mark_sent(message_id)
    assert sent.reserve(message_id).state == "sent"
    sent.release(message_id, retry)  # a late release does not undo "sent"
    assert sent.reserve(message_id).state == "sent"

    older = f"<welcome.{uuid.uuid4()}@imageproc.example>"
    sent.client.set(f"mail-sent:{older}", "1")  # what earlier versions wrote for a sent email
    assert sent.reserve(older).state == "sent"


def test_an_unreachable_server_is_retried_and_a_malformed_address_dropped(start_notifications, config):
    from shared import deadletters

    notifications = start_notifications(f"smtp://127.0.0.1:{free_port()}")
    payload = {"user_id": str(uuid.uuid4()), "name": "Ada", "email": unique_email()}
    with entrypoint_hook(notifications, "send_welcome") as send_welcome:
        with pytest.raises(Retry):
            send_welcome(payload)  # unreachable: transient, retried through the broker
    notifications.config["SMTP_URL"] = None
    with entrypoint_waiter(notifications, "send_welcome"):
        event_dispatcher(config)("user_service", "user_registered", {**payload, "email": "not-an-address"})
    assert deadletters.peek(config) == [], "a malformed address is dropped with a log line, not retried"


def test_health_checks_the_broker_and_the_smtp_server(start_notifications, smtp_sink):
    notifications = start_notifications(smtp_sink.url)
    with entrypoint_hook(notifications, "health") as health:
        assert health() == {"service": "notification_service", "status": "ok",
                            "checks": {"amqp": "ok", "smtp": "ok"}}
    response = requests.get(f"http://{notifications.config['WEB_SERVER_ADDRESS']}/healthz")
    assert response.status_code == 200 and response.json()["status"] == "ok"


def test_health_names_an_unreachable_smtp_server(start_notifications):
    notifications = start_notifications(f"smtp://127.0.0.1:{free_port()}")
    response = requests.get(f"http://{notifications.config['WEB_SERVER_ADDRESS']}/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["amqp"] == "ok" and body["checks"]["smtp"].startswith("error:")


def test_health_checks_the_outbox_folder_when_there_is_no_smtp_server(start_notifications):
    notifications = start_notifications(None)
    with entrypoint_hook(notifications, "health") as health:
        assert health()["checks"] == {"amqp": "ok", "smtp": "ok"}


class StubUsers:
    """user_service's `get_user`, for tests about mail only."""

    def __init__(self, user):
        self.user = user
        self.asked = []

    def get_user(self, user_id):
        self.asked.append(user_id)
        return self.user
