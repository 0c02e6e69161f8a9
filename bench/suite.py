"""A private copy of the suite for the benchmarks: its own ports, database, vhost, Redis db, storage.

    with Suite() as suite:          # scripts/server with the environment below; waits for
        suite.gateway               # "Gateway ready"; stops it (SIGTERM to its honcho) on exit
        suite.pids                  # {"user_service": pid, ..., "nginx": master pid}
        suite.log_records()         # every JSON log line of the services so far, parsed

    .venv/bin/python -m bench.suite       # start it, print its pids, wait for Ctrl-C

Each start begins from a clean state (`fresh=True`): the `bench` RabbitMQ vhost is deleted and made
again, Redis db 12 is flushed, the `imageproc_bench` database is dropped (scripts/bootstrap creates
it and runs the migrations) and /tmp/bench-storage and /tmp/bench-outbox are emptied. Nothing else
is touched: the developer suite on 8080 and the tests (other vhosts, dbs 13/14) are left alone.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from bench.common import REPO_ROOT, WORK_DIR

GATEWAY_PORT = 18180
SERVICE_PORTS = {
    "user_service": 18101,
    "upload_service": 18102,
    "process_service": 18103,
    "notification_service": 18104,
}
VHOST = "bench"
REDIS_DB = 12
DATABASE = "imageproc_bench"
STORAGE_DIR = "/tmp/bench-storage"
OUTBOX_DIR = "/tmp/bench-outbox"

SUITE_ENV = {
    "GATEWAY_PORT": str(GATEWAY_PORT),
    "USER_SERVICE_PORT": str(SERVICE_PORTS["user_service"]),
    "UPLOAD_SERVICE_PORT": str(SERVICE_PORTS["upload_service"]),
    "PROCESS_SERVICE_PORT": str(SERVICE_PORTS["process_service"]),
    "NOTIFICATION_SERVICE_PORT": str(SERVICE_PORTS["notification_service"]),
    "NGINX_RUNTIME_DIR": "/tmp/bench-nginx",
    "DATABASE_URL": f"postgresql+psycopg2://postgres@127.0.0.1:5432/{DATABASE}",
    "AMQP_URI": f"pyamqp://guest:guest@127.0.0.1:5672/{VHOST}",
    "REDIS_URL": f"redis://127.0.0.1:6379/{REDIS_DB}",
    "STORAGE_DIR": STORAGE_DIR,
    # Emails of the benchmark's images go here, not into the repository's var/outbox.
    "MAIL_OUTBOX_DIR": OUTBOX_DIR,
    "PUBLIC_BASE_URL": f"http://127.0.0.1:{GATEWAY_PORT}",
    "GATEWAY_LOGIN_RATE": "60000r/m",
    "GATEWAY_LOGIN_BURST": "10000",
    "GATEWAY_SIGNUP_RATE": "60000r/m",
    "GATEWAY_SIGNUP_BURST": "10000",
    "PYTHONUNBUFFERED": "1",
}
PROCESS_CMD = [
    ".venv/bin/nameko", "run", "--config", "config.yaml", "process_service.service:ProcessService",
]

_STARTED = re.compile(r"\s(\w+)\.\d+\s+started \(pid=(\d+)\)")
_LINE = re.compile(r"^\S+ (\S+?)(?:\.\d+)?\s+\| (.*)$")


def _program_pid(pid):
    """The pid of the program itself when `pid` is a `/bin/sh -c` wrapper waiting for it."""
    from bench.common import children_of

    for _ in range(3):
        try:
            argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
        except OSError:
            return pid
        children = children_of(pid)
        if not argv0.endswith(b"sh") or len(children) != 1:
            return pid
        pid = children[0]
    return pid


def suite_env(**extra):
    env = dict(os.environ)
    env.update(SUITE_ENV)
    env.setdefault("PYTHONWARNINGS", "ignore")
    env.update({k: str(v) for k, v in extra.items()})
    return env


def nameko_config():
    """The config a standalone dispatcher or RPC proxy needs to reach the suite's broker."""
    return {"AMQP_URI": SUITE_ENV["AMQP_URI"]}


def _port_open(port):
    import socket

    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _http_ok(url, timeout=5):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def reset_state(out=print):
    """A clean vhost, Redis db, database and storage for the next start (only the suite's own)."""
    run = lambda *cmd: subprocess.run(cmd, capture_output=True, text=True, timeout=60)  # noqa: E731
    run("rabbitmqctl", "delete_vhost", VHOST)
    result = run("rabbitmqctl", "add_vhost", VHOST)
    if result.returncode != 0:
        raise RuntimeError(f"rabbitmqctl add_vhost {VHOST} failed: {result.stderr.strip()}")
    run("rabbitmqctl", "set_permissions", "-p", VHOST, "guest", ".*", ".*", ".*")
    run("redis-cli", "-n", str(REDIS_DB), "FLUSHDB")
    import psycopg2

    connection = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
    connection.close()
    for folder in (STORAGE_DIR, OUTBOX_DIR):
        shutil.rmtree(folder, ignore_errors=True)
    out(f"suite: fresh vhost {VHOST}, redis db {REDIS_DB}, database {DATABASE}, {STORAGE_DIR}")


class Suite:
    def __init__(self, fresh=True, out=print, ready_timeout=240):
        self.fresh = fresh
        self.out = out
        self.ready_timeout = ready_timeout
        self.gateway = f"http://127.0.0.1:{GATEWAY_PORT}"
        self.ports = dict(SERVICE_PORTS)
        self.pids = {}
        self.proc = None
        self.extra = []  # extra process_service processes
        WORK_DIR.mkdir(parents=True, exist_ok=True)
        self.log_path = WORK_DIR / f"suite-{time.strftime('%Y%m%d-%H%M%S')}.log"
        self._ready = threading.Event()
        self._reader = None

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self):
        self._stop_leftover()
        busy = [p for p in (GATEWAY_PORT, *SERVICE_PORTS.values()) if _port_open(p)]
        if busy:
            raise RuntimeError(f"ports {busy} are in use: another benchmark suite is running?")
        if self.fresh:
            reset_state(self.out)
        self.out(f"suite: starting scripts/server on {self.gateway} (log: {self.log_path})")
        started = time.monotonic()
        self._log = open(self.log_path, "w", buffering=1)
        self.proc = subprocess.Popen(
            ["scripts/server"],
            cwd=REPO_ROOT,
            env=suite_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: stopping it touches nothing else
            text=True,
            bufsize=1,
        )
        self._reader = threading.Thread(target=self._read_output, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + self.ready_timeout
        while not self._ready.wait(0.5):
            if self.proc.poll() is not None:
                raise RuntimeError(f"scripts/server exited with {self.proc.returncode}; see {self.log_path}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the suite was not ready after {self.ready_timeout}s; see {self.log_path}")
        # honcho prints "started (pid=...)" for each process; nginx's master is its child.
        missing = [name for name in (*SERVICE_PORTS, "nginx") if name not in self.pids]
        if missing:
            raise RuntimeError(f"no pid seen for {missing}; see {self.log_path}")
        # honcho runs each Procfile line through /bin/sh -c: the pid it prints may be that shell.
        self.pids = {name: _program_pid(pid) for name, pid in self.pids.items()}
        self.out(f"suite: ready in {time.monotonic() - started:.1f}s; pids {self.pids}")
        return self

    def _read_output(self):
        for line in self.proc.stdout:
            self._log.write(line)
            match = _STARTED.search(line)
            if match:
                self.pids[match.group(1)] = int(match.group(2))
            if line.startswith("Gateway ready"):
                self._ready.set()
        self._log.flush()

    def stop(self):
        for extra in list(self.extra):
            extra.stop()
        if self.proc is None or self.proc.poll() is not None:
            return
        self.out("suite: stopping")
        try:
            os.kill(self.proc.pid, signal.SIGTERM)  # honcho stops every process it started
            self.proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        except ProcessLookupError:
            pass
        if self._reader is not None:
            self._reader.join(timeout=5)
        self._log.close()

    def _stop_leftover(self):
        """A suite of an interrupted earlier benchmark run still holding the ports: stop it with
        scripts/stop, which only acts on the honcho recorded for GATEWAY_PORT=18180."""
        pid_file = REPO_ROOT / "var" / "run" / f"server-{GATEWAY_PORT}.pid"
        if pid_file.exists() and _port_open(GATEWAY_PORT):
            self.out("suite: a benchmark suite from an earlier run is still up; stopping it")
            subprocess.run(["scripts/stop"], cwd=REPO_ROOT, env=suite_env(), timeout=60)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- facts ------------------------------------------------------------------------------------

    def service_url(self, name):
        return f"http://127.0.0.1:{self.ports[name]}"

    def process_pids(self):
        """{name: pid} of the service processes, nginx's master and its workers."""
        from bench.common import children_of

        pids = dict(self.pids)
        for index, child in enumerate(children_of(self.pids["nginx"])):
            pids[f"nginx worker {index + 1}"] = child
        for index, extra in enumerate(self.extra):
            pids[f"process_service #{index + 2}"] = extra.pid
        return pids

    def log_records(self, since=None):
        """Parsed JSON log lines: dicts with the service's fields plus `_proc` (honcho's name)."""
        records = []
        paths = [self.log_path] + [extra.log_path for extra in self.extra_history]
        for path in paths:
            try:
                text = Path(path).read_text(errors="replace")
            except OSError:
                continue
            for line in text.splitlines():
                match = _LINE.match(line)
                payload = match.group(2) if match else line
                proc = match.group(1) if match else Path(path).stem
                if not payload.startswith("{"):
                    continue
                try:
                    record = json.loads(payload)
                except ValueError:
                    continue
                record["_proc"] = proc
                records.append(record)
        return records

    extra_history = []

    # -- extra process_service processes -----------------------------------------------------------

    def start_process_service(self, port):
        extra = ExtraProcessService(port)
        extra.start()
        self.extra.append(extra)
        self.extra_history.append(extra)
        return extra


class ExtraProcessService:
    """One more process_service, started exactly as the Procfile starts the suite's own."""

    def __init__(self, port):
        self.port = port
        self.log_path = WORK_DIR / f"process_service-{port}-{time.strftime('%H%M%S')}.log"
        self.proc = None

    @property
    def pid(self):
        return self.proc.pid

    def start(self, timeout=60):
        env = suite_env(WEB_SERVER_ADDRESS=f"127.0.0.1:{self.port}", OTEL_SERVICE_NAME="process_service")
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            PROCESS_CMD, cwd=REPO_ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while not _http_ok(f"http://127.0.0.1:{self.port}/healthz", timeout=2):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"extra process_service on {self.port} did not start; see {self.log_path}")
            time.sleep(0.3)
        time.sleep(1.0)  # its queue consumer starts with the container; give it a moment
        return self

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._log.close()


# -- helpers the benchmarks share ---------------------------------------------------------------------


def redis_clients(db=REDIS_DB):
    """CLIENT LIST entries (dicts) of connections currently on Redis db `db`."""
    result = subprocess.run(["redis-cli", "CLIENT", "LIST"], capture_output=True, text=True, timeout=10)
    clients = []
    for line in result.stdout.splitlines():
        fields = dict(part.split("=", 1) for part in line.split() if "=" in part)
        if fields.get("db") == str(db):
            clients.append(fields)
    return clients


def tcp_connections(pid, remote_port=None, local_port=None):
    """Established TCP connections of process `pid` (by its socket inodes in /proc/net/tcp)."""
    inodes = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        return 0
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            local, remote, state, inode = parts[1], parts[2], parts[3], parts[9]
            if state != "01" or inode not in inodes:  # 01: ESTABLISHED
                continue
            if remote_port is not None and int(remote.rsplit(":", 1)[1], 16) != remote_port:
                continue
            if local_port is not None and int(local.rsplit(":", 1)[1], 16) != local_port:
                continue
            count += 1
    return count


def main():
    suite = Suite()
    suite.start()
    print(f"gateway {suite.gateway}; pids {suite.process_pids()}; Ctrl-C stops it")
    try:
        while suite.proc.poll() is None:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        suite.stop()


if __name__ == "__main__":
    sys.exit(main())
