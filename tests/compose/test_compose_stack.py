"""docker-compose.yml, really run: the project's image built, the stack started with podman, and the
README's walkthrough done through the published gateway port, on both storage backends.

What this proves that tests/unit/test_compose.py (the schema) cannot: every variable, command,
healthcheck, volume, service name and dependency of the file works together in containers.
"""
import io
import json
import time
import uuid

import pytest
import requests
from PIL import Image

from tests.compose.conftest import NOT_STARTED
from tests.compose.stack import has_healthcheck, health_of
from tests.support.clients import ImagesClient, sign_up_and_log_in

pytestmark = pytest.mark.compose


def photo(width=1600, height=1200, seed=0):
    """A JPEG with detail enough that its processing takes a moment."""
    image = Image.effect_mandelbrot((width, height), (-2.0 + seed * 0.01, -1.2, 1.0, 1.2), 60).convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


class Mailpit:
    """Mailpit's API (or the stand-in's, which answers the same shape) at the published port."""

    def __init__(self, base_url):
        self.base_url = base_url

    def to(self, address):
        listing = requests.get(f"{self.base_url}/api/v1/messages", timeout=10)
        listing.raise_for_status()
        return [message for message in listing.json()["messages"]
                if any(to["Address"].lower() == address.lower() for to in message["To"])]

    def wait_for(self, address, subject_part, count=1, timeout=60):
        deadline = time.monotonic() + timeout
        while True:
            found = [message for message in self.to(address) if subject_part in message["Subject"]]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.5)

    def text(self, message):
        response = requests.get(f"{self.base_url}/api/v1/message/{message['ID']}", timeout=10)
        response.raise_for_status()
        return response.json()["Text"]


def test_every_container_is_healthy_and_runs_unprivileged(stack):
    containers = stack.containers()
    expected = {"user_service", "upload_service", "process_service", "notification_service", "nginx",
                "rabbitmq", "postgres", "redis", "mailpit", "prometheus"}
    if stack.storage == "s3":
        expected |= {"seaweedfs"}
    running = {name for name, entry in containers.items() if entry["State"]["Running"]}
    assert expected <= running, f"not running: {expected - running}"
    for name in expected:
        if has_healthcheck(containers[name]):
            assert health_of(containers[name]) == "healthy", (name, stack.logs(name))
    # The one-shots ran to completion.
    one_shots = {"migrate", "keys"} | ({"create-bucket"} if stack.storage == "s3" else set())
    for name in one_shots:
        state = containers[name]["State"]
        assert not state["Running"] and state["ExitCode"] == 0, (name, state, stack.logs(name))
    # The four services run as the image's app user, not root.
    for name in ("user_service", "upload_service", "process_service", "notification_service"):
        assert stack.exec(name, "id", "-u").stdout.strip() == "10001"


def test_readme_walkthrough_through_the_published_gateway(stack):
    mail = Mailpit(stack.mailpit_url)
    user, token = sign_up_and_log_in(stack.base_url, name="Ada")
    welcome = mail.wait_for(user["email"], "Welcome")
    assert len(welcome) == 1, mail.to(user["email"])

    images = ImagesClient(stack.base_url, token)
    upload = images.upload(photo(), operations=[{"type": "resize", "width": 800},
                                                 {"type": "convert", "format": "webp"}])
    assert upload.status_code == 202, upload.text
    image_id = upload.json()["image"]["id"]

    status = images.wait_until_done(image_id, timeout=60)
    assert status["status"] == "completed", status

    download = images.download(image_id)
    assert download.status_code == 200, download.text
    assert download.headers["Content-Type"] == "image/webp"
    assert Image.open(io.BytesIO(download.content)).size == (800, 600)

    ready = mail.wait_for(user["email"], "is ready")
    assert len(ready) == 1, mail.to(user["email"])
    # The email's link is a signed URL on the published port: it serves the same bytes, no token.
    link = next(word for word in mail.text(ready[0]).split() if word.startswith(stack.base_url))
    signed = requests.get(link, timeout=30)
    assert signed.status_code == 200, (link, signed.text)
    assert signed.content == download.content


def test_restarting_process_service_mid_upload_loses_nothing(stack):
    if stack.storage != "file":
        pytest.skip("restarted once, on the folder-store stack: what it checks does not depend on the store")
    mail = Mailpit(stack.mailpit_url)
    user, token = sign_up_and_log_in(stack.base_url, name="Grace")
    images = ImagesClient(stack.base_url, token)
    heavy = [{"type": "blur", "radius": 12}, {"type": "sharpen"}, {"type": "resize", "width": 1200},
             {"type": "convert", "format": "webp"}]
    accepted = []
    for seed in range(8):
        response = images.upload(photo(2400, 1800, seed), operations=heavy, filename=f"photo-{seed}.jpg")
        assert response.status_code == 202, response.text
        accepted.append(response.json()["image"]["id"])

    unfinished = [image_id for image_id in accepted
                  if images.status(image_id, wait=0).json()["status"] != "completed"]
    assert unfinished, "every image was done before the restart: nothing was in flight"
    started = time.monotonic()
    stack.restart("process_service")
    restarted_after = time.monotonic() - started

    for image_id in accepted:
        status = images.wait_until_done(image_id, timeout=180)
        assert status["status"] == "completed", status
        download = images.download(image_id)
        assert download.status_code == 200
        assert Image.open(io.BytesIO(download.content)).size[0] == 1200
    ready = mail.wait_for(user["email"], "is ready", count=len(accepted), timeout=120)
    time.sleep(3)  # a duplicate would come right behind
    ready = [message for message in mail.to(user["email"]) if "is ready" in message["Subject"]]
    assert len(ready) == len(accepted), [message["Subject"] for message in ready]
    # The stop drained the pipeline that was running instead of being killed at a 10 s default.
    assert restarted_after < 600, restarted_after
    print(f"process_service restarted in {restarted_after:.1f} s with {len(unfinished)} of "
          f"{len(accepted)} images unfinished")


def test_prometheus_answers_and_scrapes_every_service(stack):
    base = f"http://127.0.0.1:{stack.ports['PROMETHEUS_PORT']}"
    assert requests.get(f"{base}/-/ready", timeout=10).status_code == 200
    services = {"user_service", "upload_service", "process_service", "notification_service"}
    deadline = time.monotonic() + 60  # one scrape every 15 s
    while True:
        targets = requests.get(f"{base}/api/v1/targets", timeout=10).json()["data"]["activeTargets"]
        up = {target["labels"]["job"] for target in targets if target["health"] == "up"}
        if services <= up or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert services <= up, targets


def test_one_trace_per_upload_across_the_services(stack):
    """The services export to http://jaeger:4318 (the OTLP receiver standing in for Jaeger here):
    an upload's trace holds the spans of each service it went through, the email included."""
    user, token = sign_up_and_log_in(stack.base_url, name="Trace")
    images = ImagesClient(stack.base_url, token)
    upload = images.upload(photo(400, 300), operations=[{"type": "resize", "width": 200}])
    assert upload.status_code == 202, upload.text
    trace_id = upload.headers["X-Request-Id"]
    assert images.wait_until_done(upload.json()["image"]["id"])["status"] == "completed"
    wanted = {"upload_service", "process_service", "notification_service"}
    deadline = time.monotonic() + 60  # spans leave in batches, every 5 s
    while True:
        lines = stack.exec("jaeger", "cat", "/tmp/spans.jsonl").stdout.splitlines()
        spans = [span for span in map(json.loads, lines) if span["trace_id"] == trace_id]
        services = {span["service"] for span in spans}
        if wanted <= services or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert wanted <= services, (trace_id, services)


@pytest.mark.parametrize("service", sorted(NOT_STARTED))
def test_services_that_need_a_registry(service):
    pytest.skip(f"{service} not started: {NOT_STARTED[service]}")
