"""The processes a fault test acts on directly: a service run outside honcho (to kill -9 it and start
it again) and the SMTP sink (to stop it for a while)."""
import os
import signal
import subprocess

import requests

from shared.config import REPO_ROOT
from tests.conftest import start_smtp_sink
from tests.support.mailbox import Mailbox
from tests.support.processes import free_port, port_open, wait_for

SERVICE_START_TIMEOUT = 60


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
