"""Private RabbitMQ, PostgreSQL and Redis servers for tests that stop, restart or flush them.

Each runs on free ports with its data in a temporary folder of its own, so the shared servers
(5672, 5432, 6379) that other tests and developers use stay up whatever a test does to these.
Each class is a context manager (started on enter, stopped and removed on exit) and has the
operations a fault test needs: stop/start (an outage), restart, flush.

    with RabbitNode() as rabbit, PostgresCluster() as postgres, RedisServer() as redis_server:
        env = {"AMQP_URI": rabbit.amqp_uri(), "DATABASE_URL": postgres.url("app"),
               "REDIS_URL": redis_server.url(0)}

Needs root (the servers run as their own OS users, as the packaged ones do) and the Debian
packages rabbitmq-server, postgresql-15 and redis-server.
"""
import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import uuid
from pathlib import Path

import psycopg2
import redis
from psycopg2 import sql

from tests.support.processes import free_port, port_open, wait_for

COMMAND_TIMEOUT = 90
POSTGRES_BIN = Path(os.environ.get("TEST_POSTGRES_BIN", "/usr/lib/postgresql/15/bin"))


def _run(args, timeout=COMMAND_TIMEOUT, env=None, check=True):
    result = subprocess.run(
        args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, args))} failed ({result.returncode}):\n{result.stdout[-3000:]}")
    return result


def _folder_for(user, prefix):
    """A temporary folder the server's OS user owns (pytest's own tmp folders are root's, 0700)."""
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=os.environ.get("TEST_SERVERS_TMP", "/tmp")))
    entry = pwd.getpwnam(user)
    os.chown(folder, entry.pw_uid, entry.pw_gid)
    return folder


class RabbitNode:
    """A second RabbitMQ node (`faults-<id>@localhost`) with its own ports, database and logs.

    `stop_app()`/`start_app()` stop and start the broker inside the running node: every client
    connection is closed, durable queues and persistent messages survive, as in a restart."""

    def __init__(self, port=None, host="127.0.0.1"):
        """`host`: the address it listens on (another than loopback lets guest in from there:
        the multi-host tests reach it from network namespaces)."""
        self.host = host
        self.port = port or free_port()
        self.dist_port = free_port(avoid={self.port})
        self.nodename = f"faults{uuid.uuid4().hex[:6]}@localhost"
        self.folder = None

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self):
        self.launch()
        self.wait_running()
        return self

    def launch(self):
        """Starts the node without waiting for it (`wait_running()` does): boot takes seconds."""
        self.folder = _folder_for("rabbitmq", "faults-rabbit-")
        (self.folder / "enabled_plugins").write_text("[].\n")
        (self.folder / "rabbitmq.conf").write_text(
            f"listeners.tcp.local = {self.host}:{self.port}\n"
            + ("loopback_users.guest = true\n" if self.host == "127.0.0.1" else "loopback_users = none\n") +
            # the test machine's disk may be fuller than RabbitMQ's default margin likes
            "disk_free_limit.absolute = 10MB\n"
        )
        (self.folder / "rabbitmq-env.conf").write_text("")
        for name in ("enabled_plugins", "rabbitmq.conf", "rabbitmq-env.conf"):
            shutil.chown(self.folder / name, "rabbitmq", "rabbitmq")
        _run(["rabbitmq-server", "-detached"], env=self._env())
        return self

    def wait_running(self, timeout=COMMAND_TIMEOUT):
        self.ctl("wait", str(self.folder / "node.pid"), "--timeout", str(timeout), timeout=timeout + 10)
        wait_for(lambda: port_open(self.port, self.host), timeout, f"RabbitMQ node {self.nodename} is not listening")

    def stop(self):
        if self.folder is None:
            return
        self.ctl("stop", check=False)
        wait_for(lambda: not port_open(self.port, self.host), 30, "RabbitMQ node did not stop")
        # epmd forgets the node by itself; the node's files go
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder = None

    def stop_app(self):
        """The broker goes away (connections closed, port closed); the Erlang node stays."""
        self.ctl("stop_app")
        wait_for(lambda: not port_open(self.port, self.host), 30, "RabbitMQ did not stop listening")

    def start_app(self):
        self.ctl("start_app")
        self.ctl("await_startup", "--timeout", "60")
        wait_for(lambda: port_open(self.port, self.host), 60, "RabbitMQ did not listen again")

    def restart(self):
        self.stop_app()
        self.start_app()

    @contextlib.contextmanager
    def memory_alarm(self):
        """RabbitMQ's memory alarm while the block runs: like a disk alarm, it blocks every
        connection that publishes (the broker stops reading its socket) until it ends."""
        watermark = self.ctl("eval", "vm_memory_monitor:get_vm_memory_high_watermark().").stdout.strip()
        self.ctl("set_vm_memory_high_watermark", "absolute", "1MB")
        try:
            wait_for(self.alarms, 30, "RabbitMQ raised no memory alarm")
            yield
        finally:
            self.ctl("eval", f"vm_memory_monitor:set_vm_memory_high_watermark({watermark}).")
            wait_for(lambda: not self.alarms(), 30, "RabbitMQ's memory alarm did not end")

    def alarms(self):
        """The resource alarms in effect, as rabbitmqctl prints them ("[]" for none)."""
        alarms = self.ctl("eval", "rabbit_alarm:get_alarms().").stdout.strip()
        return None if alarms == "[]" else alarms

    # -- use --------------------------------------------------------------------------------------
    def amqp_uri(self, vhost="/"):
        vhost = "" if vhost == "/" else vhost
        return f"pyamqp://guest:guest@{self.host}:{self.port}/{vhost}"

    def ctl(self, *args, timeout=COMMAND_TIMEOUT, check=True):
        return _run(["rabbitmqctl", "-q", "-n", self.nodename, *args], timeout=timeout, env=self._env(), check=check)

    def add_vhost(self, vhost):
        self.ctl("add_vhost", vhost)
        self.ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        return self.amqp_uri(vhost)

    def queues(self, vhost="/"):
        """{queue name: (ready, unacknowledged)} of one vhost."""
        output = self.ctl(
            "list_queues", "-p", vhost, "--no-table-headers", "name", "messages_ready", "messages_unacknowledged"
        ).stdout
        queues = {}
        for line in output.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[1].isdigit():
                queues[parts[0]] = (int(parts[1]), int(parts[2]))
        return queues

    def _env(self):
        folder = self.folder
        return {
            **os.environ,
            "RABBITMQ_NODENAME": self.nodename,
            "RABBITMQ_NODE_IP_ADDRESS": self.host,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CONFIG_FILE": str(folder / "rabbitmq.conf"),
            "RABBITMQ_CONF_ENV_FILE": str(folder / "rabbitmq-env.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(folder / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(folder / "mnesia"),
            "RABBITMQ_LOG_BASE": str(folder / "log"),
            "RABBITMQ_PID_FILE": str(folder / "node.pid"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(folder / "advanced.config"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()


class PostgresCluster:
    """A throwaway PostgreSQL cluster (initdb, trust authentication, fsync off) on its own port."""

    def __init__(self, port=None, host="127.0.0.1"):
        self.host = host
        self.port = port or free_port()
        self.folder = None

    @property
    def data(self):
        return self.folder / "data"

    @property
    def log_path(self):
        return self.folder / "postgres.log"

    def start(self):
        if self.folder is None:
            self.folder = _folder_for("postgres", "faults-postgres-")
            self._as_postgres(POSTGRES_BIN / "initdb", "-D", self.data, "-A", "trust", "-U", "postgres",
                              "--no-sync", "-E", "UTF8", "--locale", "C")
            if self.host != "127.0.0.1":  # trust from the other hosts' network too (a test's own)
                with open(self.data / "pg_hba.conf", "a") as hba:
                    hba.write(f"host all all {self.host.rsplit('.', 1)[0]}.0/24 trust\n")
        options = (f"-p {self.port} -k {self.folder} -c listen_addresses={self.host} -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300")
        self._as_postgres(POSTGRES_BIN / "pg_ctl", "-D", self.data, "-o", options, "-l", self.log_path,
                          "-w", "-t", "60", "start")
        wait_for(self.accepting, 60, "PostgreSQL did not accept connections")
        return self

    def stop(self, mode="fast"):
        """Stops the server (an outage); `start()` brings the same cluster back."""
        self._as_postgres(POSTGRES_BIN / "pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "60", "stop")

    def restart(self, mode="fast"):
        self.stop(mode)
        self.start()

    def destroy(self):
        if self.folder is None:
            return
        if (self.data / "postmaster.pid").exists():
            self._as_postgres(POSTGRES_BIN / "pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder = None

    def accepting(self):
        try:
            psycopg2.connect(self.dsn(), connect_timeout=2).close()
            return True
        except psycopg2.OperationalError:
            return False

    def dsn(self, database="postgres"):
        return f"host={self.host} port={self.port} user=postgres dbname={database}"

    def url(self, database):
        return f"postgresql+psycopg2://postgres@{self.host}:{self.port}/{database}"

    def create_database(self, name):
        connection = psycopg2.connect(self.dsn())
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        connection.close()
        return self.url(name)

    def _as_postgres(self, *args, check=True):
        return _run(["runuser", "-u", "postgres", "--", *map(str, args)], check=check)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.destroy()


class RedisServer:
    """A redis-server without persistence: a restart comes back empty (stopped and flushed)."""

    def __init__(self, port=None, host="127.0.0.1"):
        self.host = host
        self.port = port or free_port()
        self.folder = None

    def start(self):
        if self.folder is None:
            self.folder = Path(tempfile.mkdtemp(prefix="faults-redis-", dir=os.environ.get("TEST_SERVERS_TMP", "/tmp")))
        _run([
            "redis-server", "--bind", self.host, "--protected-mode", "no", "--port", str(self.port), "--save", "", "--appendonly", "no",
            "--daemonize", "yes", "--pidfile", str(self.folder / "redis.pid"), "--dir", str(self.folder),
            "--logfile", str(self.folder / "redis.log"),
        ])
        wait_for(self._pings, 30, "Redis did not answer")
        return self

    def stop(self):
        """Shuts the server down without saving: started again, it is empty."""
        with contextlib.suppress(redis.ConnectionError):
            redis.Redis(host=self.host, port=self.port, socket_timeout=5).shutdown(nosave=True)
        wait_for(lambda: not port_open(self.port, self.host), 30, "Redis did not stop")

    def flush(self):
        redis.Redis(host=self.host, port=self.port, socket_timeout=5).flushall()

    def destroy(self):
        if self.folder is None:
            return
        with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
            os.kill(int((self.folder / "redis.pid").read_text()), signal.SIGKILL)
        wait_for(lambda: not port_open(self.port, self.host), 30, "Redis did not stop")
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder = None

    def url(self, db=0):
        return f"redis://{self.host}:{self.port}/{db}"

    def client(self, db=0):
        return redis.Redis(host=self.host, port=self.port, db=db, socket_timeout=5, decode_responses=True)

    def _pings(self):
        try:
            return redis.Redis(host=self.host, port=self.port, socket_timeout=1).ping()
        except redis.RedisError:
            return False

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.destroy()


@contextlib.contextmanager
def tmpfs(folder, size="64m"):
    """A small tmpfs mounted on `folder` (a volume that can be filled up); unmounted on exit."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(folder)])
    try:
        yield folder
    finally:
        _run(["umount", "-l", str(folder)], check=False)


def fill(folder, leave_bytes, name=".filler"):
    """Fills the file system of `folder` until only about `leave_bytes` are free; returns the
    filler's path (remove it to free the space)."""
    path = Path(folder) / name
    free = shutil.disk_usage(folder).free
    size = max(0, free - leave_bytes)
    with open(path, "wb") as filler:
        chunk = b"\0" * (1024 * 1024)
        while size > 0:
            written = filler.write(chunk[: min(size, len(chunk))])
            size -= written
    return path
