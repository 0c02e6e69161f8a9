"""The suite as a cluster: every service on a host of its own (tests/multihost/network.py), sharing
only RabbitMQ, PostgreSQL, Redis, the object store and SMTP, all on the infrastructure host (the
root namespace, at the bridge's address).

    gateway    nginx, two upload_service upstreams      upload-a, upload-b   upload_service
    process-a, process-b   process_service              users   user_service
    notify     notification_service                     (root)  RabbitMQ, PostgreSQL, Redis, SeaweedFS, SMTP

Each host has its own folders (spool, outbox, nginx's files): nothing is shared on disk but the key
files every host is configured with (as a deployment hands each machine its secrets). Services are
started with their Procfile lines, listening on their host's address (SERVICES_BIND); the gateway
reaches them by the addresses of its configuration (*_SERVICE_ADDR, several per service).
"""
import contextlib
import os
import subprocess
import sys

import requests

from shared.config import REPO_ROOT
from tests.faults.records import Records
from tests.faults.services import procfile_line
from tests.faults.verification import References
from tests.support.launcher import UNTHROTTLED_GATEWAY
from tests.support.processes import wait_for

SERVICE_PORTS = {"user_service": 8001, "upload_service": 8002, "process_service": 8003, "notification_service": 8004}
GATEWAY_PORT = 8080
HOSTS = {
    "gateway": "nginx",
    "upload-a": "upload_service",
    "upload-b": "upload_service",
    "process-a": "process_service",
    "process-b": "process_service",
    "users": "user_service",
    "notify": "notification_service",
}
START_TIMEOUT = 90
PROCESSING_LEASE_SECONDS = 10  # a dead host's image is taken over within seconds (production: 15 s)


class Cluster:
    def __init__(self, network, folder, rabbit, postgres, redis_server, seaweedfs, smtp, key_files):
        self.network = network
        self.folder = folder
        self.rabbit = rabbit
        self.smtp = smtp
        self.mailbox = smtp.mailbox
        self.seaweedfs = seaweedfs
        self.hosts = {name: network.add_host(name) for name in HOSTS}
        self.url = f"http://{self.hosts['gateway'].address}:{GATEWAY_PORT}"
        self.settings = {
            "AMQP_URI": rabbit.amqp_uri(),
            "DATABASE_URL": postgres.url("imageproc_cluster"),
            "USER_DATABASE_URL": "",
            "UPLOAD_DATABASE_URL": "",
            "REDIS_URL": redis_server.url(0),
            "STORAGE_URL": seaweedfs.url("cluster"),
            **seaweedfs.env(),
            "SMTP_URL": smtp.url,
            "JWT_PRIVATE_KEY_FILE": str(key_files[0]),
            "JWT_PUBLIC_KEY_FILE": str(key_files[1]),
            "PUBLIC_BASE_URL": self.url,
            "BCRYPT_ROUNDS": "4",
            "PROCESSING_LEASE_SECONDS": str(PROCESSING_LEASE_SECONDS),
            "PUBLISH_TIMEOUT_SECONDS": "3",
            "PYTHONUNBUFFERED": "1",
            "PYTHONWARNINGS": "ignore:pkg_resources is deprecated,ignore::Warning:nameko.cli.commands",
            **UNTHROTTLED_GATEWAY,
        }
        postgres.create_database("imageproc_cluster")
        self.records = Records(self.settings["DATABASE_URL"], self.settings["AMQP_URI"], rabbit, None,
                               describe=self.log)
        self.references = References(folder / "references")
        self.services = {}  # host name -> Popen
        self.dead = set()  # hosts a test killed on purpose

    # -- configuration ------------------------------------------------------------------------------
    def host_env(self, host_name):
        """The environment of one host: the shared settings, its own folders, its own address."""
        folder = self.folder / host_name
        folder.mkdir(parents=True, exist_ok=True)
        env = {key: value for key, value in os.environ.items() if not key.startswith(("OTEL_", "AWS_"))}
        env.update(self.settings)
        env.update({
            "SERVICES_BIND": self.hosts[host_name].address if host_name in self.hosts else self.network.address,
            **{f"{name.upper()}_PORT": str(port) for name, port in SERVICE_PORTS.items()},
            "SPOOL_DIR": str(folder / "spool"),
            "STORAGE_DIR": str(folder / "storage"),  # unused with s3://, and not shared
            "MAIL_OUTBOX_DIR": str(folder / "outbox"),
            "NGINX_RUNTIME_DIR": str(folder / "nginx"),
            "GATEWAY_ACCESS_LOG": str(folder / "access.log"),
        })
        return env

    def addresses_of(self, service):
        return ",".join(f"{self.hosts[name].address}:{SERVICE_PORTS[service]}"
                        for name, runs in HOSTS.items() if runs == service)

    def gateway_env(self):
        env = self.host_env("gateway")
        env.update({
            "GATEWAY_BIND": self.hosts["gateway"].address,
            "GATEWAY_PORT": str(GATEWAY_PORT),
            **{f"{service.upper()}_ADDR": self.addresses_of(service) for service in SERVICE_PORTS},
        })
        return env

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self):
        migrate = subprocess.run([sys.executable, "-m", "shared.migrate"], cwd=REPO_ROOT, env=self.host_env("migrate"),
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
        assert migrate.returncode == 0, migrate.stdout
        for host_name, service in HOSTS.items():
            if service != "nginx":
                self.start_service(host_name)
        for host_name, service in HOSTS.items():
            if service != "nginx":
                self.wait_ready(host_name)
        # Last, as a deployment starts it (compose: depends_on healthy): a gateway probing services
        # that are still starting would count them failed, and keep them out for fail_timeout.
        self.start_gateway()
        self.wait_ready("gateway")

    def start_service(self, host_name):
        command = procfile_line(HOSTS[host_name])
        self.services[host_name] = self.hosts[host_name].start(
            ["sh", "-c", f"exec {command}"], self.host_env(host_name), self.folder / f"{host_name}.log", cwd=REPO_ROOT)

    def start_gateway(self):
        env = self.gateway_env()
        rendered = subprocess.run(["scripts/render-nginx-conf"], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, timeout=60)
        assert rendered.returncode == 0, rendered.stdout
        command = ["nginx", "-e", "stderr", "-g", "daemon off;", "-p", f"{env['NGINX_RUNTIME_DIR']}/", "-c", "nginx.conf"]
        self.services["gateway"] = self.hosts["gateway"].start(command, env, self.folder / "gateway.log", cwd=REPO_ROOT)

    def service_url(self, host_name):
        if HOSTS[host_name] == "nginx":
            return self.url
        return f"http://{self.hosts[host_name].address}:{SERVICE_PORTS[HOSTS[host_name]]}"

    def healthy(self, host_name):
        try:
            return requests.get(f"{self.service_url(host_name)}/healthz", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    def wait_ready(self, host_name, timeout=START_TIMEOUT):
        wait_for(lambda: self.healthy(host_name), timeout,
                 lambda: f"{host_name} is not healthy:\n{self.log_tail(host_name)}", interval=0.5)

    def assert_alive(self, after):
        """Every host's service still runs, but on the hosts a test killed (`dead`)."""
        gone = {name: process.returncode for name, process in self.services.items()
                if name not in self.dead and process.poll() is not None}
        assert not gone, f"services exited after {after}: {gone}\n{self.log()}"

    def stop(self):
        for host in self.hosts.values():
            with contextlib.suppress(Exception):
                host.stop_all(grace=20)

    # -- what happened ------------------------------------------------------------------------------
    def log_tail(self, host_name, chars=4000):
        path = self.folder / f"{host_name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def log(self, chars=3000):
        return "\n".join(f"---- {name} ----\n{self.log_tail(name, chars)}" for name in HOSTS)

    def listening(self, host_name):
        """The addresses its host's processes listen on (`ss`, inside the namespace)."""
        output = subprocess.run(["ip", "netns", "exec", self.hosts[host_name].namespace, "ss", "-ltnH"],
                                stdout=subprocess.PIPE, text=True, timeout=10).stdout
        return sorted({line.split()[3] for line in output.splitlines() if line.strip()})
