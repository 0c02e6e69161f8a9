"""A private copy of the suite for the benchmarks: its own ports, database, vhost, Redis db, storage.

    with Suite() as suite:          # tests.support.launcher: scripts/server with the environment
        suite.gateway               # below; waits for "Gateway ready"; stops it on exit
        suite.pids                  # {"user_service": pid, ..., "nginx": master pid}
        suite.log_records()         # every JSON log line of the services so far, parsed

    .venv/bin/python -m bench.suite       # start it, print its pids, wait for Ctrl-C

Each start begins from a clean state (`fresh=True`): the `bench` RabbitMQ vhost is deleted and made
again, Redis db 12 is flushed, the `imageproc_bench` database is dropped (scripts/bootstrap creates
it and runs the migrations) and the suite's folder (storage, mail outbox, nginx) is emptied.
Nothing else is touched: the developer suite on 8080 and the tests (other vhosts, dbs 13/14) are
left alone.
"""
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from bench.common import REPO_ROOT, WORK_DIR
from tests.support.launcher import LaunchedSuite, drop_database, reset_redis_db, suite_environment
from tests.support.vhosts import reset_vhost
from tests.support.processes import children_of, port_open

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
SUITE_FOLDER = Path("/tmp/bench-suite")
STORAGE_DIR = str(SUITE_FOLDER / "storage")

SUITE_ENV = {
    key: value
    for key, value in suite_environment(
        SUITE_FOLDER,
        ports={"gateway": GATEWAY_PORT, **SERVICE_PORTS},
        DATABASE_URL=f"postgresql+psycopg2://postgres@127.0.0.1:5432/{DATABASE}",
        AMQP_URI=f"pyamqp://guest:guest@127.0.0.1:5672/{VHOST}",
        REDIS_URL=f"redis://127.0.0.1:6379/{REDIS_DB}",
    ).items()
    if os.environ.get(key) != value
}
SERVICE_CLASSES = {
    "user_service": "UserService",
    "upload_service": "UploadService",
    "process_service": "ProcessService",
    "notification_service": "NotificationService",
}


def service_command(service):
    """How the Procfile runs `service` (without scripts/respawn): `nameko run` of its class."""
    return [".venv/bin/nameko", "run", "--config", "config.yaml", f"{service}.service:{SERVICE_CLASSES[service]}"]



def suite_env(**extra):
    env = dict(os.environ)
    env.update(SUITE_ENV)
    env.setdefault("PYTHONWARNINGS", "ignore")
    env.update({k: str(v) for k, v in extra.items()})
    return env


def nameko_config():
    """The config a standalone dispatcher or RPC proxy needs to reach the suite's broker."""
    return {"AMQP_URI": SUITE_ENV["AMQP_URI"]}


def _http_ok(url, timeout=5):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def reset_state(out=print, env=None):
    """A clean vhost, Redis db, database and folder for the next start (only the suite's own);
    `env`: those of a second suite (second_suite_env)."""
    env = env or {**SUITE_ENV, "STORAGE_DIR": STORAGE_DIR}
    vhost = env["AMQP_URI"].rsplit("/", 1)[1]
    database = env["DATABASE_URL"].rsplit("/", 1)[1]
    folder = Path(env["STORAGE_DIR"]).parent
    reset_vhost(vhost)
    reset_redis_db(env["REDIS_URL"])
    drop_database(database)
    shutil.rmtree(folder, ignore_errors=True)
    out(f"suite: fresh vhost {vhost}, redis {env['REDIS_URL']}, database {database}, {folder}")


def second_suite_env(name, port_offset, redis_db, **extra):
    """The environment of a second private suite running beside the first (bench.storage runs a
    file:// and an s3:// suite at once): ports `port_offset` above the first's, vhost and database
    `bench_<name>`, Redis db `redis_db`, folder /tmp/bench-suite-<name>; `extra`: more settings."""
    ports = {"gateway": GATEWAY_PORT + port_offset, **{k: v + port_offset for k, v in SERVICE_PORTS.items()}}
    folder = Path(f"{SUITE_FOLDER}-{name}")
    env = dict(os.environ)
    env.update(suite_environment(
        folder,
        ports=ports,
        DATABASE_URL=f"postgresql+psycopg2://postgres@127.0.0.1:5432/{DATABASE}_{name}",
        AMQP_URI=f"pyamqp://guest:guest@127.0.0.1:5672/{VHOST}_{name}",
        REDIS_URL=f"redis://127.0.0.1:6379/{redis_db}",
        **extra,
    ))
    env.setdefault("PYTHONWARNINGS", "ignore")
    return env, folder


class Suite(LaunchedSuite):
    def __init__(self, fresh=True, out=print, ready_timeout=240, env=None, folder=None):
        """`env` and `folder` (from second_suite_env): a suite beside the default one."""
        WORK_DIR.mkdir(parents=True, exist_ok=True)
        tag = "" if folder is None else f"{Path(folder).name}-"
        super().__init__(env or suite_env(), folder or SUITE_FOLDER,
                         log_path=WORK_DIR / f"suite-{tag}{time.strftime('%Y%m%d-%H%M%S')}.log")
        self.fresh = fresh
        self.out = out
        self.ready_timeout = ready_timeout
        self.gateway = self.url
        self.pids = {}
        self.extra = []  # extra process_service processes
        self.extra_history = []

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self):
        self._stop_leftover()
        busy = [port for port in self.ports.values() if port_open(port)]
        if busy:
            raise RuntimeError(f"ports {busy} are in use: another benchmark suite is running?")
        if self.fresh:
            if self.folder == SUITE_FOLDER:
                reset_state(self.out)
            else:
                reset_state(self.out, self.env)
        self.out(f"suite: starting scripts/server on {self.gateway} (log: {self.log_path})")
        started = time.monotonic()
        super().start(timeout=self.ready_timeout)
        self.pids = super().pids()
        missing = [name for name in (*SERVICE_PORTS, "nginx") if name not in self.pids]
        if missing:
            self.stop()
            raise RuntimeError(f"no pid seen for {missing}; see {self.log_path}")
        self.out(f"suite: ready in {time.monotonic() - started:.1f}s; pids {self.pids}")
        return self

    def stop(self):
        for extra in list(self.extra):
            extra.stop()
        if self.running:
            self.out("suite: stopping")
            super().stop(timeout=40)

    def _stop_leftover(self):
        """A suite of an interrupted earlier benchmark run still holding the ports: stop it with
        scripts/stop, which only acts on the honcho recorded for GATEWAY_PORT=18180."""
        if self.folder != SUITE_FOLDER:
            return  # a second suite: the default one may rightly be up beside it
        pid_file = REPO_ROOT / "var" / "run" / f"server-{GATEWAY_PORT}.pid"
        if pid_file.exists() and port_open(GATEWAY_PORT):
            self.out("suite: a benchmark suite from an earlier run is still up; stopping it")
            subprocess.run(["scripts/stop"], cwd=REPO_ROOT, env=suite_env(), timeout=60)

    # -- facts ------------------------------------------------------------------------------------

    def process_pids(self):
        """{name: pid} of the service processes, nginx's master and its workers."""
        pids = dict(self.pids)
        for index, child in enumerate(children_of(self.pids["nginx"])):
            pids[f"nginx worker {index + 1}"] = child
        for index, extra in enumerate(self.extra):
            pids[f"{extra.service} #{index + 2}"] = extra.pid
        return pids

    def log_records(self, since=None):
        """Parsed JSON log lines of the suite and of its extra process_services: dicts with the
        service's fields plus `_proc` (honcho's name, or the extra's log file)."""
        records = super().log_records()
        for extra in self.extra_history:
            records.extend(extra.log_records())
        return records

    # -- extra process_service processes -----------------------------------------------------------

    def start_process_service(self, port):
        return self.start_extra("process_service", port)

    def start_extra(self, service, port):
        """One more instance of `service` beside the suite's own, on `port` (the gateway reaches
        an extra upload_service only if the suite's env lists it in UPLOAD_SERVICE_ADDR)."""
        extra = ExtraService(service, port, self.env)
        extra.start()
        self.extra.append(extra)
        self.extra_history.append(extra)
        return extra


class ExtraService:
    """One more instance of a service, started exactly as the Procfile starts the suite's own."""

    def __init__(self, service, port, env=None):
        self.service = service
        self.port = port
        self.base_env = env
        self.log_path = WORK_DIR / f"{service}-{port}-{time.strftime('%H%M%S')}.log"
        self.proc = None

    @property
    def pid(self):
        return self.proc.pid

    def start(self, timeout=60):
        env = {**(self.base_env or suite_env()), "WEB_SERVER_ADDRESS": f"127.0.0.1:{self.port}",
               "OTEL_SERVICE_NAME": self.service}
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            service_command(self.service), cwd=REPO_ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while not _http_ok(f"http://127.0.0.1:{self.port}/healthz", timeout=2):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"extra {self.service} on {self.port} did not start; see {self.log_path}")
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

    def log_records(self):
        records = []
        for line in Path(self.log_path).read_text(errors="replace").splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    records.append({**json.loads(line), "_proc": Path(self.log_path).stem})
        return records


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
        while suite.running:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        suite.stop()


if __name__ == "__main__":
    sys.exit(main())
