"""The suite the fault tests break, on servers of its own.

It runs as in production (tests.support.launcher: scripts/server, honcho, nginx, the services), but:

- against a private RabbitMQ node, PostgreSQL cluster and Redis server on free ports
  (tests/support/servers.py), so that stopping, restarting or flushing them never touches the
  shared ones other tests and developers use;
- with upload_service and process_service taken out of honcho's Procfile and run as separate
  processes from the same Procfile lines, without scripts/respawn (tests/faults/services.py): a
  test that kills -9 a service owns that process and its restart;
- with STORAGE_DIR on a small tmpfs the storage test can fill up, and an SMTP sink of its own that
  a test can stop and start again on the same port;
- or, the same suite on the object store (the `fault_store` fixture: "s3"): SeaweedFS, a bucket prefix of its own,
  which a test can stop (an outage) and start again.

What a test reaches through it, one object per kind of fault or view:
    faults.rabbit, faults.postgres, faults.redis     the private servers (stop, start, restart, flush)
    faults.smtp, faults.storage_dir                  the mail sink, the tmpfs to fill (file store)
    faults.seaweedfs, faults.store                   the object store (s3), and either store's view
    faults.services["upload_service"]                a managed service (kill -9, start)
    faults.users                                     accounts and uploads through the gateway
    faults.records                                   what the services stored (rows, files, queues)
    faults.verify(accounts, uploads)                 the end-of-test check (tests/faults/verification.py)
"""
import contextlib
import time

import eventlet
import kombu
import requests
from sqlalchemy import text

from tests.faults.records import Records
from tests.faults.services import ManagedService
from tests.faults.users import Users
from tests.faults.verification import References, verify
from tests.support.launcher import LaunchedSuite, suite_environment
from tests.support.stored import StoreView
from tests.support.processes import port_open, wait_for

MANAGED_SERVICES = ("upload_service", "process_service")
STORAGE_SIZE = "160m"
MAX_PROCESSING_ATTEMPTS = 3
# Short, so that a killed worker's image is taken over within seconds (production: 15 s), yet longer
# than a broker restart plus reconnection: renewals travel over RPC and wait for the broker.
PROCESSING_LEASE_SECONDS = 10
PUBLISH_TIMEOUT_SECONDS = 3  # production: 10


def fault_environment(folder, rabbit, postgres, redis_server, smtp, storage_dir, key_files, storage_url=""):
    env = suite_environment(
        folder,
        STORAGE_URL=storage_url,
        AMQP_URI=rabbit.amqp_uri(),
        DATABASE_URL=postgres.url("imageproc_faults"),
        USER_DATABASE_URL="",
        UPLOAD_DATABASE_URL="",
        REDIS_URL=redis_server.url(0),
        STORAGE_DIR=storage_dir,
        SMTP_URL=smtp.url,
        JWT_PRIVATE_KEY_FILE=key_files[0],
        JWT_PUBLIC_KEY_FILE=key_files[1],
        BCRYPT_ROUNDS=4,
        MAX_PROCESSING_ATTEMPTS=MAX_PROCESSING_ATTEMPTS,
        PROCESSING_LEASE_SECONDS=PROCESSING_LEASE_SECONDS,
        PUBLISH_TIMEOUT_SECONDS=PUBLISH_TIMEOUT_SECONDS,
        PYTHONWARNINGS="ignore:pkg_resources is deprecated,ignore::Warning:nameko.cli.commands",
    )
    return {key: value for key, value in env.items() if not key.startswith("OTEL_")}


class FaultSuite:
    def __init__(self, folder, env, rabbit, postgres, redis_server, smtp, storage_dir, seaweedfs=None):
        self.folder = folder
        self.env = env
        self.rabbit = rabbit
        self.postgres = postgres
        self.redis = redis_server
        self.smtp = smtp
        self.mailbox = smtp.mailbox
        self.storage_dir = storage_dir
        self.seaweedfs = seaweedfs
        self.store = StoreView({"STORAGE_URL": env["STORAGE_URL"], "STORAGE_DIR": str(storage_dir),
                                "SPOOL_DIR": str(folder / "test-spool")})
        self.launched = LaunchedSuite(env, folder, without=MANAGED_SERVICES)
        self.url = self.launched.url
        self.services = {
            name: ManagedService(name, self.launched.ports[name], env, folder / f"{name}.log")
            for name in MANAGED_SERVICES
        }
        self.users = Users(self.url)
        self.records = Records(env["DATABASE_URL"], env["AMQP_URI"], rabbit, self.store, describe=self.log)
        self.references = References(folder / "references")

    def verify(self, accounts, uploads, **options):
        return verify(self, accounts, uploads, **options)

    # -- lifecycle ------------------------------------------------------------------------------------
    def start(self):
        def start_managed_services():
            for service in self.services.values():
                service.start(wait=False)
            for service in self.services.values():
                service.wait_ready()

        self.launched.start(once_spawned=start_managed_services)

    def stop(self, hard=False):
        """Everything at once, each gracefully and in parallel (`hard`: SIGKILL at once)."""
        if hard:
            for service in self.services.values():
                if service.running:
                    service.process.kill()
        for service in self.services.values():
            service.terminate()
        self.launched.stop(hard=hard)
        for service in self.services.values():
            service.stop()
        wait_for(lambda: not any(port_open(port) for port in self.launched.ports.values()), 30,
                 "the suite's ports stay open")

    def restore(self):
        """Puts back whatever a test stopped, filled or killed; the whole suite if honcho went down."""
        self.restore_servers()
        if not self.launched.running:
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
        with self.records.engine.begin() as connection:
            connection.execute(text("TRUNCATE images, upload_outbox, user_outbox"))
        self.store.remove_everything()
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
        if self.seaweedfs is not None and not self.seaweedfs.running:
            self.seaweedfs.start()
        if not port_open(self.rabbit.port):
            self.rabbit.start_app()
        if not self.postgres.accepting():
            self.postgres.start()
        if not port_open(self.redis.port):
            self.redis.start()

    def spool_files(self):
        """Files in the services' spool (SPOOL_DIR): local copies of image bytes, which must not
        outlive their request or pipeline run."""
        spool = self.folder / "spool"
        # What is inside each process's folder: a file, or a pipeline run's folder.
        return sorted(str(path.relative_to(spool)) for path in spool.glob("*/*")) if spool.exists() else []

    # -- while a fault lasts ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def traffic(self, account=None, image_id=None, clients=8):
        """Requests going on in the background (the gateway's health checks, which ask every
        service, and status reads): a fault then meets workers in the middle of their work, as it
        would in production."""
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
        kills = [line for line in self.launched.log().splitlines()
                 if "killing <ServiceContainer" in line or "stopped (rc=" in line or "respawn: " in line]
        if kills or not self.launched.running:
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
        parts = [f"---- honcho ----\n{self.launched.log_tail(chars)}"]
        for service in self.services.values():
            parts.append(f"---- {service.name} (managed) ----\n{service.log_tail(chars)}")
        return "\n".join(parts)
