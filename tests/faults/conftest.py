"""Fault injection against the whole suite, on servers of its own.

The suite runs as in production (scripts/server: honcho, nginx, the services), but:

- against a private RabbitMQ node, PostgreSQL cluster and Redis server on free ports
  (tests/support/servers.py), so that stopping, restarting or flushing them never touches the
  shared ones other tests and developers use;
- with upload_service and process_service taken out of honcho's Procfile and run here as
  separate processes from the same Procfile lines, without scripts/respawn: a test that kills -9
  a service owns that process and its restart;
- with STORAGE_DIR on a small tmpfs the storage test can fill up, and an SMTP sink of its own
  that a test can stop and start again on the same port.

The suite is started once per session. Each test gets it through the `faults` fixture, which checks
that everything is up before the test and puts back whatever the test stopped afterwards (servers,
services, SMTP, free space), restarting the whole suite when honcho went down. After a failed test
it also wipes what the failure left (queues, dead letters, images, files, Redis, mail) and restarts
every process, so that one bug fails one test and not every test after it.

`faults.assert_alive(after)` checks that no service died (or is dying) because of a fault: a
managed service still running, and no container kill or respawn in any log. `faults.traffic()` keeps requests
going in the background, so that a fault meets workers in the middle of their work.

`faults.verify(accounts, uploads)` is the common end-of-test check: every accepted image reached
the final state a fault-free run gives (same status, error code, output format, size and bytes as
the pipeline produces on its own), exactly one email each (by Message-ID), nothing stuck or
orphaned (rows, files, unpublished outbox rows, queued or unacknowledged messages, dead letters),
and every error answer was the JSON envelope.
"""
import contextlib
import dataclasses
import hashlib
import io
import json
import os
import random
import signal
import subprocess
import time
import uuid
from pathlib import Path

import eventlet
import kombu
import pytest
import requests
from eventlet import tpool
from PIL import Image
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from shared.config import REPO_ROOT
from tests.conftest import free_port, start_smtp_sink
from tests.support.clients import ACCOUNT_PASSWORD, ImagesClient, bearer, sign_up_and_log_in
from tests.support.mailbox import Mailbox
from tests.support.servers import PostgresCluster, RabbitNode, RedisServer, port_open, tmpfs

MANAGED_SERVICES = ("upload_service", "process_service")
STORAGE_SIZE = "160m"
READY_TIMEOUT = 120
SERVICE_START_TIMEOUT = 60
FINAL_STATUSES = ("completed", "failed")
DEAD_LETTER_QUEUE = "imageproc.dead-letters"
MAX_PROCESSING_ATTEMPTS = 3
# Short, so that a killed worker's image is taken over within seconds (production: 15 s), yet longer
# than a broker restart plus reconnection: renewals travel over RPC and wait for the broker.
PROCESSING_LEASE_SECONDS = 10
PUBLISH_TIMEOUT_SECONDS = 3  # production: 10
SLOW_SIDE = 6000  # a 6000x6000 WebP: ~0.5 s to validate, ~1 s per blur at full size
SLOW_OPERATIONS = [
    {"type": "blur", "radius": 50},
    {"type": "blur", "radius": 50},
    {"type": "sharpen", "amount": 2, "radius": 20},
    {"type": "resize", "width": 800},
]
SMALL_OPERATIONS = [
    [{"type": "resize", "width": 160}, {"type": "convert", "format": "webp"}],
    [{"type": "rotate", "degrees": 90}, {"type": "grayscale"}],
    [{"type": "crop", "left": 10, "top": 10, "width": 100, "height": 80}, {"type": "convert", "format": "png"}],
    [{"type": "watermark", "text": "faults"}, {"type": "compress", "quality": 60}],
]
FAILING_OPERATIONS = [{"type": "crop", "left": 5000, "top": 0, "width": 10, "height": 10}]  # invalid_crop


def pytest_configure(config):
    # The lead registers this in pytest.ini as well; registering here keeps --strict-markers happy meanwhile.
    config.addinivalue_line("markers", "faults: fault injection against the whole suite on private servers (slow)")


# -- waiting ------------------------------------------------------------------------------------------


def wait_for(predicate, timeout, message, interval=0.2):
    """The predicate's first truthy value; AssertionError(message()) after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(message() if callable(message) else message)
        time.sleep(interval)


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def json_error_problem(response):
    """Why this error answer is not the contract's JSON envelope (None when it is)."""
    if not response.headers.get("Content-Type", "").startswith("application/json"):
        return f"{response.status_code} with Content-Type {response.headers.get('Content-Type')!r}: {response.text[:200]!r}"
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return f"{response.status_code} JSON without an error envelope: {response.text[:200]!r}"
    if not (isinstance(error.get("code"), str) and isinstance(error.get("message"), str)
            and isinstance(error.get("details"), dict)):
        return f"{response.status_code} malformed error envelope: {error!r}"
    return None


# -- test images --------------------------------------------------------------------------------------


def noise_image(seed, size, fmt="JPEG", **options):
    """A deterministic image that does not compress to nothing: smooth noise scaled up."""
    rng = random.Random(seed)
    cells = (max(2, size[0] // 40), max(2, size[1] // 40))
    small = Image.frombytes("RGB", cells, rng.randbytes(cells[0] * cells[1] * 3))
    image = small.resize(size, Image.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


# -- processes ----------------------------------------------------------------------------------------


def descendants(pid):
    """Every live process below `pid`, children first (read from /proc)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text()
                parents.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found.extend(children)
        todo.extend(children)
    return found


def procfile_line(name):
    """The command of a Procfile line, without scripts/respawn: a test that kills a service owns
    its restart, and must see it die."""
    for line in (REPO_ROOT / "Procfile").read_text().splitlines():
        if line.startswith(f"{name}:"):
            command = line.split(":", 1)[1].strip()
            return command.removeprefix(f"scripts/respawn {name} ")
    raise AssertionError(f"no {name} in the Procfile")


class ManagedService:
    """One service run from its own Procfile line, outside honcho: it can be killed and restarted."""

    def __init__(self, name, port, env, log_path):
        self.name = name
        self.port = port
        self.env = env
        self.log_path = log_path
        self.process = None
        self.starts = 0

    @property
    def pid(self):
        return self.process.pid if self.process is not None else None

    @property
    def running(self):
        return self.process is not None and self.process.poll() is None

    def start(self, wait=True):
        assert not self.running, f"{self.name} is already running"
        assert not port_open(self.port), f"port {self.port} of {self.name} is still taken"
        self.starts += 1
        with open(self.log_path, "ab") as log_file:
            log_file.write(f"\n==== {self.name} start #{self.starts} ====\n".encode())
            log_file.flush()
            # `exec`: the shell becomes `env`, which becomes nameko: the pid is the service's own.
            self.process = subprocess.Popen(
                ["/bin/sh", "-c", "exec " + procfile_line(self.name)],
                cwd=REPO_ROOT,
                env=self.env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=SERVICE_START_TIMEOUT):
        """Up once its HTTP port answers: nameko starts the AMQP consumers before it returns from
        container.start(), and the web server with them."""

        def answering():
            if not self.running:
                raise AssertionError(f"{self.name} exited ({self.process.returncode}):\n{self.log_tail()}")
            try:
                requests.get(f"http://127.0.0.1:{self.port}/healthz", timeout=2)
                return True
            except requests.RequestException:
                return False

        wait_for(answering, timeout, lambda: f"{self.name} did not start:\n{self.log_tail()}", interval=0.1)

    def kill(self):
        """kill -9, as a crash or the OOM killer would."""
        assert self.running, f"{self.name} is not running"
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        wait_for(lambda: not port_open(self.port), 10, f"{self.name}'s port stays open after kill -9")

    def terminate(self):
        if self.running:
            self.process.terminate()

    def stop(self):
        if not self.running:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def log_tail(self, chars=4000):
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""


class SmtpControl:
    """The suite's SMTP sink, which a test may stop for a while and start again on the same port."""

    def __init__(self, folder):
        self.port = free_port()
        self.folder = folder
        self.url = f"smtp://127.0.0.1:{self.port}"
        self.mailbox = Mailbox(folder)
        self.process = None

    @property
    def running(self):
        return self.process is not None and self.process.poll() is None

    def start(self):
        wait_for(lambda: not port_open(self.port), 10, "the SMTP port is still taken")
        self.process = start_smtp_sink(self.port, self.folder)
        wait_for(lambda: port_open(self.port), 10, "the SMTP sink did not start")

    def stop(self):
        if self.running:
            self.process.terminate()
            self.process.wait(timeout=10)
        wait_for(lambda: not port_open(self.port), 10, "the SMTP sink did not stop")


# -- the suite ----------------------------------------------------------------------------------------


@dataclasses.dataclass
class Account:
    user: dict
    email: str
    password: str
    token: str
    images: ImagesClient


@dataclasses.dataclass
class Upload:
    """One upload attempt: what was sent and what the gateway answered (or the client error)."""

    filename: str
    data: bytes
    operations: list
    account: Account
    status_code: int = None
    body: object = None
    error: str = None  # no HTTP answer at all (connection refused or reset)
    json_problem: str = None  # an error answer that was not the JSON envelope
    seconds: float = None

    @property
    def accepted(self):
        return self.status_code == 202

    @property
    def image_id(self):
        return self.body["image"]["id"] if self.accepted else None

    @property
    def error_code(self):
        try:
            return self.body["error"]["code"]
        except (TypeError, KeyError):
            return None

    def __repr__(self):
        return f"<Upload {self.filename} {self.status_code or self.error} {self.error_code or ''}>"


class FaultSuite:
    def __init__(self, folder, env, rabbit, postgres, redis_server, smtp, storage_dir):
        self.folder = folder
        self.env = env
        self.rabbit = rabbit
        self.postgres = postgres
        self.redis = redis_server
        self.smtp = smtp
        self.mailbox = smtp.mailbox
        self.storage_dir = storage_dir
        self.url = f"http://127.0.0.1:{env['GATEWAY_PORT']}"
        self.log_path = folder / "server.log"
        self.honcho = None
        self.services = {
            name: ManagedService(name, int(env[f"{name.upper()}_PORT"]), env, folder / f"{name}.log")
            for name in MANAGED_SERVICES
        }
        self.engine = create_engine(env["DATABASE_URL"], poolclass=NullPool, connect_args={"connect_timeout": 5})
        self._references = {}
        self._slow_image = None

    # -- lifecycle ------------------------------------------------------------------------------------
    def start(self):
        procfile = self.folder / "Procfile.faults"
        procfile.write_text("".join(
            line + "\n" for line in (REPO_ROOT / "Procfile").read_text().splitlines()
            if not line.startswith(tuple(f"{name}:" for name in MANAGED_SERVICES))
        ))
        with open(self.log_path, "ab") as log_file:
            self.honcho = subprocess.Popen(
                [str(REPO_ROOT / "scripts" / "server")],
                cwd=REPO_ROOT,
                env={**self.env, "PROCFILE": str(procfile)},
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        text_before = self.log_path.read_text(errors="replace")
        self._log_offset = len(text_before)
        started, spawned = text_before.count("Gateway ready"), text_before.count("started (pid=")

        def honcho_started():
            self._check_honcho()
            return self.log_path.read_text(errors="replace").count("started (pid=") > spawned

        # scripts/server checks that the managed services' ports are free before it bootstraps:
        # start them once honcho runs.
        wait_for(honcho_started, READY_TIMEOUT, lambda: f"honcho did not start:\n{self.log()}")
        for service in self.services.values():
            service.start(wait=False)
        for service in self.services.values():
            service.wait_ready()

        def ready():
            self._check_honcho()
            return self.log_path.read_text(errors="replace").count("Gateway ready") > started

        wait_for(ready, READY_TIMEOUT, lambda: f"the fault suite did not become ready:\n{self.log()}", interval=0.3)

    def stop(self, hard=False):
        """SIGTERM to everything at once (each stops gracefully in parallel), SIGKILL after 30 s.
        `hard`: SIGKILL at once, every process of the suite (honcho's children run in sessions of
        their own, so they are found through /proc)."""
        if hard:
            for service in self.services.values():
                if service.running:
                    service.process.kill()
            if self.honcho is not None and self.honcho.poll() is None:
                for pid in [*descendants(self.honcho.pid), self.honcho.pid]:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
        for service in self.services.values():
            service.terminate()
        if self.honcho is not None and self.honcho.poll() is None:
            os.killpg(self.honcho.pid, signal.SIGTERM)
            try:
                self.honcho.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.honcho.pid, signal.SIGKILL)
                self.honcho.wait(timeout=10)
        self.honcho = None
        for service in self.services.values():
            service.stop()
        ports = [int(self.env[f"{name}_PORT"]) for name in
                 ("GATEWAY", "USER_SERVICE", "UPLOAD_SERVICE", "PROCESS_SERVICE", "NOTIFICATION_SERVICE")]
        wait_for(lambda: not any(port_open(port) for port in ports), 30, "the suite's ports stay open")

    def _check_honcho(self):
        if self.honcho.poll() is not None:
            raise AssertionError(f"scripts/server exited ({self.honcho.returncode}):\n{self.log()}")

    def restore(self):
        """Puts back whatever a test stopped, filled or killed; the whole suite if honcho went down."""
        self.restore_servers()
        if self.honcho is None or self.honcho.poll() is not None:
            self.stop()
            self.start()
        for service in self.services.values():
            if not service.running:
                service.start()
        self.wait_healthy()
        self.wait_revocations_mirrored()

    def wait_revocations_mirrored(self, timeout=20):
        """user_service mirrors token revocations into Redis within 5 s of finding them gone; until
        then every request is checked over RPC. A test starts from the steady state."""
        wait_for(lambda: self.redis.client().exists("revocations:loaded"), timeout,
                 "user_service did not mirror the revocations into Redis", interval=0.2)

    def reset(self):
        """After a failed test: everything stopped, its data wiped (queues, images, outboxes,
        files, Redis, mail) and the suite started again, so that what the failure left behind
        (dead letters, stuck images, orphans) is not blamed on the next test."""
        self.stop(hard=True)
        self.restore_servers()
        with kombu.Connection(self.env["AMQP_URI"], connect_timeout=5) as connection:
            for queue in self.rabbit.queues():
                with contextlib.suppress(Exception), connection.channel() as channel:
                    channel.queue_purge(queue)
        with self.engine.begin() as connection:
            connection.execute(text("TRUNCATE images, upload_outbox, user_outbox"))
        for folder in ("originals", "outputs"):
            for path in (self.storage_dir / folder).iterdir():
                path.unlink()
        self.redis.flush()
        for path in self.smtp.folder.iterdir():
            path.unlink()
        self.start()
        self.wait_healthy()
        self.wait_revocations_mirrored()

    def restore_servers(self):
        with contextlib.suppress(FileNotFoundError):
            (self.storage_dir / ".filler").unlink()
        if not self.smtp.running:
            self.smtp.start()
        if not port_open(self.rabbit.port):
            self.rabbit.start_app()
        if not self.postgres.accepting():
            self.postgres.start()
        if not port_open(self.redis.port):
            self.redis.start()

    @contextlib.contextmanager
    def traffic(self, account=None, image_id=None, clients=8):
        """Requests going on in the background (gateway health checks, which make user_service ask
        every service over RPC, and status reads): a fault then meets workers in the middle of
        their work, as it would in production."""
        stop = []

        def client(kind):
            while not stop:
                try:
                    if kind == "status" and image_id is not None:
                        account.images.status(image_id, wait=0)
                    else:
                        requests.get(f"{self.url}/healthz", timeout=10)
                except requests.RequestException:
                    time.sleep(0.05)

        threads = [eventlet.spawn(client, ("status", "health")[n % 2]) for n in range(clients)]
        try:
            yield
        finally:
            stop.append(True)
            for thread in threads:
                thread.wait()

    def assert_alive(self, after):
        """Every process of the suite is still running, and no service container is being killed:
        a dependency's outage must not take a service down (scripts/respawn would start honcho's
        services again: its "respawn:" line counts as a death)."""
        dying = {}
        for name, service in self.services.items():
            since_start = service.log_tail(10_000_000).rsplit(f"==== {name} start #", 1)[-1]
            kills = [line for line in since_start.splitlines() if "killing <ServiceContainer" in line]
            if kills or not service.running:
                dying[name] = kills or [f"exited ({service.process.returncode})"]
        since_start = self.log_path.read_text(errors="replace")[self._log_offset:]
        kills = [line for line in since_start.splitlines()
                 if "killing <ServiceContainer" in line or "stopped (rc=" in line or "respawn: " in line]
        if kills or self.honcho.poll() is not None:
            dying["honcho's suite (user_service, notification_service, nginx)"] = kills or ["honcho exited"]
        if dying:
            raise AssertionError(f"services died after {after}:\n" + "\n".join(
                f"{name}: {line[:500]}" for name, lines in dying.items() for line in lines[:3]))

    def wait_healthy(self, timeout=60):
        def healthy():
            try:
                return requests.get(f"{self.url}/healthz", timeout=10).status_code == 200
            except requests.RequestException:
                return False

        wait_for(healthy, timeout, lambda: f"the suite is not healthy: {self._health_text()}\n{self.log()}", interval=0.5)

    def _health_text(self):
        try:
            return requests.get(f"{self.url}/healthz", timeout=10).text
        except requests.RequestException as exc:
            return str(exc)

    def log(self, chars=6000):
        parts = [f"---- honcho ----\n{self.log_path.read_text(errors='replace')[-chars:]}"]
        for service in self.services.values():
            parts.append(f"---- {service.name} (managed) ----\n{service.log_tail(chars)}")
        return "\n".join(parts)

    # -- the API as a user sees it --------------------------------------------------------------------
    def account(self, name="Fault"):
        user, token = sign_up_and_log_in(self.url, name)
        return Account(user, user["email"], ACCOUNT_PASSWORD, token, ImagesClient(self.url, token))

    def upload(self, account, data, operations, filename=None):
        upload = Upload(filename or f"{uuid.uuid4().hex[:12]}.img", data, operations, account)
        started = time.monotonic()
        try:
            response = requests.post(
                f"{self.url}/api/images/upload",
                headers=bearer(account.token),
                files={"image": (upload.filename, data, "application/octet-stream")},
                data={"operations": json.dumps(operations)},
                timeout=90,
            )
        except requests.RequestException as exc:
            upload.error = f"{type(exc).__name__}: {exc}"
            return upload
        finally:
            upload.seconds = time.monotonic() - started
        upload.status_code = response.status_code
        if response.status_code != 202:
            upload.json_problem = json_error_problem(response)
        with contextlib.suppress(ValueError):
            upload.body = response.json()
        return upload

    def upload_stream(self, account, count, interval, label, fail_every=0):
        """Starts `count` small uploads, one every `interval` seconds, concurrently (each in its own
        green thread); returns a function that waits for all of them and returns their Uploads."""
        pool = eventlet.GreenPool(count)
        threads = []
        for index in range(count):
            data = self.small_image(index)
            operations = FAILING_OPERATIONS if fail_every and index % fail_every == fail_every - 1 else \
                SMALL_OPERATIONS[index % len(SMALL_OPERATIONS)]
            threads.append(pool.spawn(self.upload, account, data, operations, f"{label}-{index:03d}.jpg"))
            time.sleep(interval)

        def results():
            return [thread.wait() for thread in threads]

        return results

    def small_image(self, seed):
        return noise_image(seed, (320 + seed % 7 * 16, 240 + seed % 5 * 16), "JPEG", quality=85)

    def slow_image(self):
        """A WebP whose validation (~0.5 s) and processing with SLOW_OPERATIONS (seconds) are slow
        enough to be killed in the middle of, made once per session."""
        if self._slow_image is None:
            self._slow_image = tpool.execute(noise_image, 7, (SLOW_SIDE, SLOW_SIDE), "WEBP", quality=80)
        return self._slow_image

    # -- what the services stored -----------------------------------------------------------------------
    def query(self, statement, **params):
        with self.engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(text(statement), params)]

    def image_rows(self, user_ids=None):
        if user_ids is None:
            return self.query("SELECT * FROM images")
        return self.query("SELECT * FROM images WHERE user_id::text = ANY(:ids)", ids=[str(u) for u in user_ids])

    def image_row(self, image_id):
        rows = self.query("SELECT * FROM images WHERE id = :id", id=str(image_id))
        return rows[0] if rows else None

    def unpublished(self):
        return {
            table: self.query(f"SELECT event_type, attempts, created_at FROM {table} WHERE published_at IS NULL")
            for table in ("upload_outbox", "user_outbox")
        }

    def stored_files(self):
        """Every file under originals/ and outputs/, relative to STORAGE_DIR."""
        return {
            f"{folder}/{path.name}"
            for folder in ("originals", "outputs")
            for path in (self.storage_dir / folder).iterdir()
        }

    def busy_queues(self):
        """Queues of the private node holding messages (ready or unacknowledged). RPC reply queues
        are left out: a reply can outlive a killed caller in its queue (nameko lets such a queue
        expire after 5 minutes); it is an answer nobody waits for, not work left undone."""
        return {
            name: counts for name, counts in self.rabbit.queues().items()
            if any(counts) and not name.startswith("rpc.reply-")
        }

    def dead_letter_summary(self):
        try:
            letters = self.dead_letters()
        except Exception as exc:  # noqa: BLE001 - a summary for a failure message
            return f"dead letters unavailable: {exc}"
        return "dead letters: " + json.dumps(
            [{"queue": l["queue"], "error": l["error"], "image_id": (l["payload"] or {}).get("image_id")}
             for l in letters], indent=1)[:3000]

    def dead_letters(self):
        from shared import deadletters

        return deadletters.peek({"AMQP_URI": self.env["AMQP_URI"]})

    # -- the fault-free result ------------------------------------------------------------------------
    def expected(self, data, operations):
        """What a fault-free run makes of this upload: the pipeline itself, run here on the bytes."""
        from imaging.pipeline import PipelineError, process_image

        key = (sha256(data), json.dumps(operations, sort_keys=True))
        if key not in self._references:
            folder = self.folder / "references"
            folder.mkdir(exist_ok=True)
            source = folder / f"{key[0]}.src"
            source.write_bytes(data)
            stem = folder / uuid.uuid4().hex
            try:
                result = tpool.execute(process_image, str(source), operations, str(stem), 50_000_000)
            except PipelineError as exc:
                self._references[key] = {"status": "failed", "error_code": exc.code}
            else:
                output = Path(result["path"])
                self._references[key] = {
                    "status": "completed",
                    "output_format": result["format"],
                    "output_width": result["width"],
                    "output_height": result["height"],
                    "output_sha256": sha256(output.read_bytes()),
                }
                output.unlink()
        return self._references[key]

    def actual(self, row):
        if row["status"] == "completed":
            path = self.storage_dir / row["output_path"]
            return {
                "status": "completed",
                "output_format": row["output_format"],
                "output_width": row["output_width"],
                "output_height": row["output_height"],
                "output_sha256": sha256(path.read_bytes()) if path.is_file() else f"missing file {path.name}",
            }
        return {"status": row["status"], "error_code": row["error_code"]}

    # -- the end-of-test check ------------------------------------------------------------------------
    def verify(self, accounts, uploads, timeout=60, expect=None, ambiguous_ok=True):
        """Checks everything the fault tests promise; returns {image_id: row}.

        accounts: the accounts the test made (their images and emails are checked).
        uploads: every Upload the test attempted. 202 ones must have a row; refused ones (4xx, 507)
          must have none; one that got a 5xx or no answer while a service was killed may or may
          not have been stored (the client cannot know), but if it was, it is held to the same
          promises as an accepted one (`ambiguous_ok=False` forbids that).
        expect: {filename: expected state} overriding the fault-free result (e.g. processing_crashed).
        """
        expect = expect or {}
        self.assert_alive("the fault")
        by_name = {upload.filename: upload for upload in uploads}
        assert len(by_name) == len(uploads), "upload file names must be unique within a test"
        user_ids = [account.user["id"] for account in accounts]

        # Every error answer was the JSON envelope; every attempt got an answer.
        problems = [f"{u.filename}: {u.json_problem}" for u in uploads if u.json_problem]
        assert not problems, "error answers that are not JSON:\n" + "\n".join(problems)
        unanswered = [f"{u.filename}: {u.error}" for u in uploads if u.error]
        assert not unanswered, "uploads without an HTTP answer:\n" + "\n".join(unanswered)

        # Rows: one per accepted upload, none for a refused one.
        def rows_by_name():
            return {row["original_filename"]: row for row in self.image_rows(user_ids)}

        rows = rows_by_name()
        strays = sorted(set(rows) - set(by_name))
        assert not strays, f"image rows nobody uploaded: {strays}"
        for upload in uploads:
            row = rows.get(upload.filename)
            if upload.accepted:
                assert row is not None, f"{upload.filename} was answered 202 but has no row"
                assert str(row["id"]) == upload.image_id
            elif row is not None:
                assert upload.status_code is None or upload.status_code >= 500, \
                    f"{upload.filename} was refused ({upload.status_code} {upload.error_code}) yet stored"
                assert ambiguous_ok, f"{upload.filename} got {upload.status_code} yet was stored"

        # Each stored image reaches its final state. One whose event was dead-lettered never will:
        # that fails at once rather than after the timeout.
        next_letter_check = [time.monotonic() + 2]

        def all_final():
            current = rows_by_name()
            unfinished = {str(row["id"]) for row in current.values() if row["status"] not in FINAL_STATUSES}
            if not unfinished:
                return current
            if time.monotonic() >= next_letter_check[0]:
                next_letter_check[0] = time.monotonic() + 2
                stuck = {(letter["payload"] or {}).get("image_id") for letter in self.dead_letters()} & unfinished
                assert not stuck, "images that will never finish, their event dead-lettered: %s\n%s\n%s" % (
                    sorted(name for name, row in current.items() if str(row["id"]) in stuck),
                    self.dead_letter_summary(), self.log())
            return None

        rows = wait_for(all_final, timeout, lambda: (
            "images not final after %ss (status, processing attempts, crashes): %s\n%s\n%s" % (timeout, {
                name: (row["status"], row["processing_attempts"], row["processing_crashes"])
                for name, row in rows_by_name().items()
                if row["status"] not in FINAL_STATUSES
            }, self.dead_letter_summary(), self.log())), interval=0.25)

        # ...and it is the state a fault-free run gives.
        for name, row in rows.items():
            upload = by_name[name]
            wanted = expect.get(name) or self.expected(upload.data, upload.operations)
            got = self.actual(row)
            assert {key: got.get(key) for key in wanted} == wanted, (
                f"{name}: {got} instead of {wanted} (error message: {row['error_message']!r}, "
                f"processing started {row['processing_attempts']} time(s), {row['processing_crashes']} crash(es))")

        # The API says the same, as JSON.
        accounts_by_user = {account.user["id"]: account for account in accounts}
        for name, row in rows.items():
            response = accounts_by_user[str(row["user_id"])].images.status(row["id"], wait=0)
            assert response.status_code == 200, response.text
            assert response.json()["status"] == row["status"]

        # Nothing waiting: events published, queues drained, no dead letters.
        wait_for(lambda: not any(self.unpublished().values()), 20,
                 lambda: f"unpublished outbox rows: {self.unpublished()}")
        def drained():
            busy = self.busy_queues()
            # Nothing consumes the dead-letter queue: waiting would not empty it.
            assert DEAD_LETTER_QUEUE not in busy, self.dead_letter_summary()
            return not busy

        wait_for(drained, 60, lambda: f"messages left in queues: {self.busy_queues()}\n{self.log()}", interval=0.5)
        assert not self.dead_letters(), self.dead_letter_summary()

        # Exactly one email per image (by its Message-ID), the kind its final state calls for, and
        # exactly one welcome per account.
        wanted = {f"welcome.{account.user['id']}": 1 for account in accounts}
        for row in rows.values():
            kind = "image-ready" if row["status"] == "completed" else "image-failed"
            wanted[f"{kind}.{row['id']}"] = 1

        def mail_counts():
            counts = {}
            for message in self.mailbox.messages():
                local = str(message.get("Message-ID", "")).strip("<> ").partition("@")[0]
                counts[local] = counts.get(local, 0) + 1
            return counts

        def all_mail_arrived():
            counts = mail_counts()
            return counts if all(counts.get(key, 0) >= 1 for key in wanted) else None

        counts = wait_for(all_mail_arrived, 30, lambda: "emails missing: %s\n%s" % (
            sorted(key for key in wanted if key not in mail_counts()), self.log()), interval=0.3)
        ours = {key: count for key, count in counts.items()
                if key.partition(".")[2] in {str(row["id"]) for row in rows.values()} | set(user_ids)}
        assert ours == wanted, f"emails (Message-ID: count) {ours} instead of exactly one each {wanted}"
        duplicates = {key: count for key, count in counts.items() if count > 1}
        assert not duplicates, f"emails sent more than once: {duplicates}"

        self.check_storage()
        return {str(row["id"]): row for row in rows.values()}

    def check_storage(self):
        """Files and rows agree, across the whole suite: no orphan, nothing missing, no temporary file."""
        rows = self.image_rows()
        wanted = {row["original_path"] for row in rows}
        wanted |= {row["output_path"] for row in rows if row["status"] == "completed"}
        stored = self.stored_files()
        assert stored == wanted, (
            f"files without a row (or temporary): {sorted(stored - wanted)}; rows without their file: "
            f"{sorted(wanted - stored)}"
        )
        unfinished = [(str(row["id"]), row["status"]) for row in rows if row["status"] not in FINAL_STATUSES]
        assert not unfinished, f"images left unfinished: {unfinished}"

    # -- waiting on one image ---------------------------------------------------------------------------
    def wait_until_final(self, image_id, timeout=60):
        def final():
            row = self.image_row(image_id)
            return row if row is not None and row["status"] in FINAL_STATUSES else None

        return wait_for(final, timeout, lambda: f"image {image_id} not final: {self.image_row(image_id)}\n{self.log()}",
                        interval=0.2)

    def wait_processing(self, image_id, attempt, timeout=60):
        """Waits until process_service has claimed the image for the `attempt`-th time (its
        pipeline is then running); returns the row."""

        def claimed():
            row = self.image_row(image_id)
            if row is None:
                return None
            assert row["status"] not in FINAL_STATUSES, f"the image finished before it could be killed: {row}"
            return row if row["status"] == "processing" and row["processing_attempts"] >= attempt else None

        return wait_for(claimed, timeout, lambda: f"image not processing (attempt {attempt}): "
                        f"{self.image_row(image_id)}\n{self.dead_letter_summary()}\n{self.log()}", interval=0.05)


# -- fixtures -----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def _fault_suite(tmp_path_factory, key_files):
    if os.geteuid() != 0:
        pytest.skip("fault tests start their own RabbitMQ, PostgreSQL and Redis as those servers' "
                    "OS users and mount a tmpfs: run them as root (CI does)")
    folder = tmp_path_factory.mktemp("faults")
    with contextlib.ExitStack() as stack:
        rabbit = RabbitNode()
        rabbit.launch()
        stack.callback(rabbit.stop)
        postgres = stack.enter_context(PostgresCluster())
        redis_server = stack.enter_context(RedisServer())
        storage_dir = stack.enter_context(tmpfs(folder / "storage", size=STORAGE_SIZE))
        smtp = SmtpControl(folder / "mail")
        smtp.start()
        stack.callback(smtp.stop)
        rabbit.wait_running()

        env = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
        env.update({
            "GATEWAY_PORT": str(free_port()),
            "USER_SERVICE_PORT": str(free_port()),
            "UPLOAD_SERVICE_PORT": str(free_port()),
            "PROCESS_SERVICE_PORT": str(free_port()),
            "NOTIFICATION_SERVICE_PORT": str(free_port()),
            "NGINX_RUNTIME_DIR": str(folder / "nginx"),
            "GATEWAY_ACCESS_LOG": str(folder / "access.log"),
            "AMQP_URI": rabbit.amqp_uri(),
            "DATABASE_URL": postgres.url("imageproc_faults"),
            "USER_DATABASE_URL": "",
            "UPLOAD_DATABASE_URL": "",
            "REDIS_URL": redis_server.url(0),
            "STORAGE_DIR": str(storage_dir),
            "SMTP_URL": smtp.url,
            "MAIL_OUTBOX_DIR": str(folder / "outbox"),
            "JWT_PRIVATE_KEY_FILE": key_files[0],
            "JWT_PUBLIC_KEY_FILE": key_files[1],
            "BCRYPT_ROUNDS": "4",
            "MAX_PROCESSING_ATTEMPTS": str(MAX_PROCESSING_ATTEMPTS),
            "PROCESSING_LEASE_SECONDS": str(PROCESSING_LEASE_SECONDS),
            "PUBLISH_TIMEOUT_SECONDS": str(PUBLISH_TIMEOUT_SECONDS),
            "GATEWAY_LOGIN_RATE": "6000r/m",
            "GATEWAY_LOGIN_BURST": "1000",
            "GATEWAY_SIGNUP_RATE": "6000r/m",
            "GATEWAY_SIGNUP_BURST": "1000",
            "READY_TIMEOUT": str(READY_TIMEOUT),
            "PYTHONWARNINGS": "ignore:pkg_resources is deprecated,ignore::Warning:nameko.cli.commands",
        })
        suite = FaultSuite(folder, env, rabbit, postgres, redis_server, smtp, storage_dir)
        stack.callback(suite.stop)
        suite.start()
        yield suite


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"faults_{report.when}_failed", report.failed)


@pytest.fixture
def faults(request, _fault_suite):
    """The fault suite, everything up; whatever the test stopped or filled is put back afterwards,
    and after a failure everything it left behind is wiped (see FaultSuite.reset)."""
    _fault_suite.restore()
    yield _fault_suite
    if getattr(request.node, "faults_call_failed", True):
        _fault_suite.reset()
    else:
        _fault_suite.restore()
