"""docker-compose.yml run for real with podman and podman-compose, as one project the test owns.

Two things podman 4.3 (Debian bookworm's) does not do that Docker does, which this class does
for it, and nothing more:
- HEALTHCHECKs run only from systemd timers (absent here): `drive_healthchecks` runs
  `podman healthcheck run` for every container of the project every few seconds, from a thread.
- podman-compose waits for `condition: service_healthy` only with podman >= 4.6: `up` starts what
  the services depend on first (`start_first`), waits until each is healthy, then starts the rest,
  which is the order Docker Compose's conditions give.
Everything runs under the project's own name; `remove` takes away its containers, volumes and
network (the images stay: they are the build cache of the next run).
"""
import functools
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CONTAINERS_CONF = Path(__file__).with_name("containers.conf")


# What podman and podman-compose may see of this process's environment. Nothing else: Compose
# interpolates docker-compose.yml from the environment before the env file, so a variable another
# test left set here (AWS_ENDPOINT_URL_S3 pointing at a test's own SeaweedFS, STORAGE_URL, ...)
# would quietly reconfigure the stack.
PASSED_THROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "XDG_RUNTIME_DIR")


# The test's images, containers and volumes live in memory when there is room (a tmpfs): its
# builds and containers write a few GB, which on disk slowed the fsyncs of the PostgreSQL the
# other tests use when it runs alongside them (scripts/test). Kept until the host restarts, as the
# next run's build cache; the host's own podman storage is left alone.
MEMORY_STORAGE = Path("/dev/shm/imageproc-compose")
MEMORY_STORAGE_NEEDS_BYTES = 8 * 2**30


@functools.cache
def storage_conf():
    """containers-storage.conf(5) for MEMORY_STORAGE, or None (the host's storage) without room.
    Decided once per process: the test's own images fill the tmpfs, and a later call finding less
    room must not move the rest of the run to another storage that lacks them."""
    try:
        if shutil.disk_usage(MEMORY_STORAGE.parent).free < MEMORY_STORAGE_NEEDS_BYTES:
            return None
    except OSError:
        return None
    conf = MEMORY_STORAGE / "storage.conf"
    if not conf.exists():
        MEMORY_STORAGE.mkdir(parents=True, exist_ok=True)
        conf.write_text(
            '[storage]\ndriver = "overlay"\n'
            f'graphroot = "{MEMORY_STORAGE / "storage"}"\nrunroot = "/run/imageproc-compose"\n'
        )
    return conf


def podman_environment():
    """The environment of every podman call: runc and ulimits it can set here (containers.conf);
    the storage above; Docker's image format (keeps HEALTHCHECK), as scripts/build-debian-images
    builds, so a `compose build` reuses its layers."""
    environment = {name: os.environ[name] for name in PASSED_THROUGH if name in os.environ}
    environment.update({"CONTAINERS_CONF": str(CONTAINERS_CONF), "BUILDAH_FORMAT": "docker"})
    conf = storage_conf()
    if conf:
        environment["CONTAINERS_STORAGE_CONF"] = str(conf)
    return environment


def run(command, timeout=600, check=True, env=None, capture=True):
    completed = subprocess.run(
        command, cwd=REPO_ROOT, env=env or podman_environment(), timeout=timeout,
        stdout=subprocess.PIPE if capture else None, stderr=subprocess.STDOUT if capture else None,
        text=True,
    )
    if check and completed.returncode != 0:
        output = completed.stdout[-6000:] if capture else ""
        raise AssertionError(f"{' '.join(map(str, command))} exited {completed.returncode}:\n{output}")
    return completed


def podman_compose_installed():
    return importlib.util.find_spec("podman_compose") is not None  # requirements-dev.lock


class ComposeStack:
    def __init__(self, project, env_file, files=("docker-compose.yml",), profiles=()):
        self.project = project
        self.env_file = Path(env_file)
        self.files = list(files)
        self.profiles = list(profiles)
        self._driving = None

    # ---- podman-compose ----------------------------------------------------------------------
    def compose(self, *arguments, timeout=900, check=True):
        command = [sys.executable, "-m", "tests.compose.podman_compose_fixed", "--project-name", self.project, "--env-file", str(self.env_file)]
        for file in self.files:
            command += ["--file", str(file)]
        for profile in self.profiles:
            command += ["--profile", profile]
        return run(command + list(arguments), timeout=timeout, check=check)

    def build(self):
        # One service: the others that build share its image (imageproc-app:dev); podman-compose
        # would otherwise build it once per service, at the same time.
        self.compose("build", "user_service", timeout=1800)

    def up(self, start_first, health_timeout=240):
        """Starts `start_first`, waits until every one of them with a healthcheck is healthy, then
        starts the whole project and waits for every container's healthcheck."""
        self.drive_healthchecks()
        self.compose("up", "--detach", "--no-build", *start_first)
        self.wait_healthy(start_first, timeout=health_timeout)
        self.compose("up", "--detach", "--no-build")
        self.wait_healthy(timeout=health_timeout)

    def restart(self, service, timeout=900):
        self.compose("restart", service, timeout=timeout)

    def remove(self):
        self.stop_driving()
        self.compose("down", "--volumes", "--remove-orphans", "--timeout", "30", timeout=600, check=False)
        # What `down` may leave when a container failed to be created: by the project's label.
        leftovers = run(["podman", "ps", "--all", "--quiet", "--filter",
                         f"label=io.podman.compose.project={self.project}"], check=False).stdout.split()
        if leftovers:
            run(["podman", "rm", "--force", "--volumes", *leftovers], check=False)
        for volume in run(["podman", "volume", "ls", "--quiet", "--filter",
                           f"label=io.podman.compose.project={self.project}"], check=False).stdout.split():
            run(["podman", "volume", "rm", "--force", volume], check=False)
        run(["podman", "network", "rm", "--force", f"{self.project}_default"], check=False)

    # ---- containers ----------------------------------------------------------------------------
    def containers(self):
        """{service: container inspect dict} of the project's containers, stopped ones included."""
        ids = run(["podman", "ps", "--all", "--quiet", "--filter",
                   f"label=io.podman.compose.project={self.project}"]).stdout.split()
        if not ids:
            return {}
        inspected = json.loads(run(["podman", "inspect", *ids]).stdout)
        return {entry["Config"]["Labels"]["com.docker.compose.service"]: entry for entry in inspected}

    def wait_healthy(self, services=None, timeout=240):
        deadline = time.monotonic() + timeout
        while True:
            containers = self.containers()
            wanted = {name: entry for name, entry in containers.items()
                      if (services is None or name in services) and entry["State"]["Running"]
                      and has_healthcheck(entry)}
            waiting = {name: health_of(entry) for name, entry in wanted.items() if health_of(entry) != "healthy"}
            exited = {name: entry["State"]["ExitCode"] for name, entry in containers.items()
                      if (services is None or name in services) and not entry["State"]["Running"]
                      and entry["State"]["ExitCode"] != 0}
            if exited:
                raise AssertionError(f"containers exited with an error: {exited}\n{self.logs(*exited)}")
            if not waiting and (services is None or set(services) <= set(containers)):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"not healthy after {timeout} s: {waiting}\n{self.logs(*waiting)}")
            time.sleep(2)

    def drive_healthchecks(self, interval=3):
        """What systemd's timers do for podman elsewhere: every container's healthcheck, run."""
        if self._driving:
            return
        stop = threading.Event()

        def loop():
            while not stop.is_set():
                for name, entry in self.containers().items():
                    if entry["State"]["Running"] and has_healthcheck(entry):
                        run(["podman", "healthcheck", "run", entry["Id"]], check=False, timeout=60)
                stop.wait(interval)

        thread = threading.Thread(target=loop, name="healthchecks", daemon=True)
        thread.start()
        self._driving = (stop, thread)

    def stop_driving(self):
        if self._driving:
            stop, thread = self._driving
            stop.set()
            thread.join(timeout=90)
            self._driving = None

    def logs(self, *services, tail=60):
        containers = self.containers()
        chunks = []
        for service in services or containers:
            if service in containers:
                output = run(["podman", "logs", "--tail", str(tail), containers[service]["Id"]],
                             check=False).stdout
                chunks.append(f"---- {service} ----\n{output}")
        return "\n".join(chunks)

    def exec(self, service, *command, timeout=60):
        return run(["podman", "exec", self.containers()[service]["Id"], *command], timeout=timeout)


def health_of(entry):
    """A container's health from `podman inspect` (podman 4.3 names the key Healthcheck)."""
    state = entry["State"]
    health = state.get("Health") or state.get("Healthcheck") or {}
    return health.get("Status") or "none"


def has_healthcheck(entry):
    return bool((entry.get("Config") or {}).get("Healthcheck"))
