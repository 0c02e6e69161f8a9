"""The suite as the README runs it (scripts/server: honcho, nginx and the four services), started
for the end-to-end tests, the fault tests and the benchmarks from this one place.

    env = suite_environment(folder, AMQP_URI=..., DATABASE_URL=...)   # free ports, own folders
    with LaunchedSuite(env, folder) as suite:    # starts scripts/server, waits for "Gateway ready"
        suite.url, suite.ports, suite.pids()     # the gateway, every port, each program's pid
        suite.log(), suite.log_records()         # its output since this start, raw and parsed
    # stopped: SIGTERM to its process group (SIGKILL after 30 s), ports closed

`without=("upload_service",)` leaves services out of honcho's Procfile, for a caller that runs them
itself (the fault tests kill them); `once_spawned` is called when honcho has started the rest, for
such a caller to start them (scripts/server checks their ports are free before it bootstraps, and
its "Gateway ready" waits for every service).

`reset_redis_db` and `drop_database` (with tests/support/vhosts.py's `reset_vhost`) give a named
suite (the benchmarks') a clean state on the shared servers.
"""
import contextlib
import json
import os
import re
import signal
import subprocess

import psycopg2
import redis
from psycopg2 import sql

from shared.config import REPO_ROOT
from tests.support.processes import descendants, free_port, port_open, program_pid, wait_for

SERVICES = ("user_service", "upload_service", "process_service", "notification_service")
PORT_VARIABLES = {"gateway": "GATEWAY_PORT", **{name: f"{name.upper()}_PORT" for name in SERVICES}}
READY_TIMEOUT = 120
# Every client of a test or benchmark comes from 127.0.0.1: the gateway's per-address limits on
# login and signup are not what they measure (tests/e2e/test_gateway_throttling.py does, apart).
UNTHROTTLED_GATEWAY = {
    "GATEWAY_LOGIN_RATE": "60000r/m",
    "GATEWAY_LOGIN_BURST": "10000",
    "GATEWAY_SIGNUP_RATE": "60000r/m",
    "GATEWAY_SIGNUP_BURST": "10000",
}

_SPAWNED = re.compile(r"\s(\w+)\.\d+\s+started \(pid=(\d+)\)")
_LINE = re.compile(r"^\S+ (\S+?)(?:\.\d+)?\s+\| (.*)$")


def suite_environment(folder, ports=None, **settings):
    """The environment of a suite of its own: this process's, free ports (or `ports`: {"gateway":
    p, "user_service": p, ...}), nginx's files, storage and mail outbox under `folder`, the gateway
    unthrottled, then `settings` (any setting of shared/settings.py, as strings or numbers)."""
    ports = ports or {name: free_port() for name in PORT_VARIABLES}
    env = dict(os.environ)
    env.update({variable: str(ports[name]) for name, variable in PORT_VARIABLES.items()})
    env.update({
        "NGINX_RUNTIME_DIR": str(folder / "nginx"),
        "GATEWAY_ACCESS_LOG": str(folder / "access.log"),
        "STORAGE_DIR": str(folder / "storage"),
        "SPOOL_DIR": str(folder / "spool"),
        "MAIL_OUTBOX_DIR": str(folder / "outbox"),
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{ports['gateway']}",
        "READY_TIMEOUT": str(READY_TIMEOUT),
        "PYTHONUNBUFFERED": "1",
        **UNTHROTTLED_GATEWAY,
    })
    env.update({name: str(value) for name, value in settings.items()})
    return env


class LaunchedSuite:
    def __init__(self, env, folder, without=(), log_path=None):
        self.env = env
        self.folder = folder
        self.without = tuple(without)
        self.log_path = log_path or folder / "server.log"
        self.ports = {name: int(env[variable]) for name, variable in PORT_VARIABLES.items()}
        self.url = f"http://127.0.0.1:{self.ports['gateway']}"
        self.process = None
        self._log_offset = 0

    def service_url(self, name):
        return f"http://127.0.0.1:{self.ports[name]}"

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self, timeout=READY_TIMEOUT + 30, once_spawned=None):
        assert not self.running, "the suite is already running"
        self.folder.mkdir(parents=True, exist_ok=True)
        env = dict(self.env)
        if self.without:
            procfile = self.folder / "Procfile.launched"
            procfile.write_text("".join(
                line + "\n" for line in (REPO_ROOT / "Procfile").read_text().splitlines()
                if not line.startswith(tuple(f"{name}:" for name in self.without))
            ))
            env["PROCFILE"] = str(procfile)
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log_file:
            self.process = subprocess.Popen(
                [str(REPO_ROOT / "scripts" / "server")],
                cwd=REPO_ROOT,
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: stopping it touches nothing else
            )
        if once_spawned is not None:
            wait_for(lambda: self._alive() and _SPAWNED.search(self.log()), timeout,
                     lambda: f"honcho did not start:\n{self.log_tail()}", interval=0.1)
            once_spawned()
        wait_for(lambda: self._alive() and "Gateway ready" in self.log(), timeout,
                 lambda: f"the suite did not become ready in {timeout} s:\n{self.log_tail()}", interval=0.3)
        return self

    def _alive(self):
        if self.process.poll() is not None:
            raise AssertionError(f"scripts/server exited ({self.process.returncode}):\n{self.log_tail()}")
        return True

    @property
    def running(self):
        return self.process is not None and self.process.poll() is None

    def stop(self, hard=False, timeout=30):
        """SIGTERM to the whole process group (honcho stops each process gracefully, in parallel),
        SIGKILL after `timeout` s. `hard`: SIGKILL at once to every process of the suite (honcho's
        children run in sessions of their own: they are found below it)."""
        if self.running:
            if hard:
                for pid in [*descendants(self.process.pid), self.process.pid]:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self.process = None
        ports = [port for name, port in self.ports.items() if name not in self.without]
        wait_for(lambda: not any(port_open(port) for port in ports), 30, "the suite's ports stay open")

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()

    # -- what it says ---------------------------------------------------------------------------------
    def log(self):
        """Its output since this start."""
        try:
            with open(self.log_path, "rb") as log_file:
                log_file.seek(self._log_offset)
                return log_file.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, chars=6000):
        return self.log()[-chars:]

    def pids(self):
        """{name: pid} of each program honcho started in this run (the service itself, not the
        shell or scripts/respawn around it; nginx's master)."""
        return {match[1]: program_pid(int(match[2])) for match in _SPAWNED.finditer(self.log())}

    def log_records(self):
        """Its JSON log lines, parsed, each with `_proc`: the name honcho gave the process."""
        records = []
        for line in self.log().splitlines():
            match = _LINE.match(line)
            if match is None or not match[2].startswith("{"):
                continue
            with contextlib.suppress(ValueError):
                records.append({**json.loads(match[2]), "_proc": match[1]})
        return records


# -- a clean state on the shared servers ------------------------------------------------------------


def reset_redis_db(url):
    redis.Redis.from_url(url).flushdb()


ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"


def _as_admin(statement, name, admin_dsn):
    connection = psycopg2.connect(admin_dsn)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(sql.SQL(statement).format(sql.Identifier(name)))
    connection.close()


def create_database(name, admin_dsn=ADMIN_DSN):
    _as_admin("CREATE DATABASE {}", name, admin_dsn)


def drop_database(name, admin_dsn=ADMIN_DSN):
    """Drops the database (scripts/bootstrap makes it again, migrated, when the suite starts)."""
    _as_admin("DROP DATABASE IF EXISTS {} WITH (FORCE)", name, admin_dsn)
