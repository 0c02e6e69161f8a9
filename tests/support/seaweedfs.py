"""A SeaweedFS server of the tests' own: the real S3-compatible store, started by the project's
scripts/seaweedfs on free ports with its data in a temporary folder, SigV4 identities on.

    with SeaweedFS(folder) as store:
        store.env()            # AWS_ENDPOINT_URL_S3, AWS_ACCESS_KEY_ID, ... and the gateway's key
        store.url("run-1")     # s3://<bucket>/run-1: a prefix of one's own in the shared bucket
        store.client()         # boto3, with the services' key
        store.stop(); store.start()   # an outage (same ports, same data)
"""
import os
import signal
import subprocess
import uuid

import boto3
from botocore.config import Config

from shared.config import REPO_ROOT
from tests.support.processes import claim_port, free_port, port_open, wait_for

BUCKET = "imageproc-tests"
START_TIMEOUT = 60


def _free_port_pair():
    """A port p such that p and p + 10000 (SeaweedFS's gRPC port for it) are both free."""
    while True:
        port = free_port()
        if port + 10000 < 65536 and not port_open(port + 10000) and claim_port(port + 10000):
            return port


class SeaweedFS:
    def __init__(self, folder, ip="127.0.0.1"):
        self.folder = folder
        self.ip = ip
        self.ports = {}
        while len(set(self.ports.values())) < 4:
            self.ports = {name: _free_port_pair() for name in ("s3", "master", "volume", "filer")}
        self.keys = {
            "AWS_ACCESS_KEY_ID": f"svc{uuid.uuid4().hex[:12]}",
            "AWS_SECRET_ACCESS_KEY": uuid.uuid4().hex,
            "GATEWAY_S3_ACCESS_KEY_ID": f"gw{uuid.uuid4().hex[:12]}",
            "GATEWAY_S3_SECRET_ACCESS_KEY": uuid.uuid4().hex,
        }
        self.endpoint = f"http://{ip}:{self.ports['s3']}"
        self.process = None
        self.log_path = folder / "seaweedfs.log"

    def env(self):
        return {
            "AWS_ENDPOINT_URL_S3": self.endpoint,
            "AWS_REGION": "us-east-1",
            # Nothing of a developer's own AWS configuration may leak into the tests.
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            **self.keys,
        }

    def url(self, prefix=""):
        return f"s3://{BUCKET}" + (f"/{prefix}" if prefix else "")

    def client(self, access_key=None, secret_key=None):
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=access_key or self.keys["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=secret_key or self.keys["AWS_SECRET_ACCESS_KEY"],
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )

    def start(self):
        self.folder.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            **self.env(),
            "SEAWEEDFS_DIR": str(self.folder),
            "SEAWEEDFS_IP": self.ip,
            "SEAWEEDFS_BUCKET": BUCKET,
            "SEAWEEDFS_S3_PORT": str(self.ports["s3"]),
            "SEAWEEDFS_MASTER_PORT": str(self.ports["master"]),
            "SEAWEEDFS_VOLUME_PORT": str(self.ports["volume"]),
            "SEAWEEDFS_FILER_PORT": str(self.ports["filer"]),
            "PYTHONWARNINGS": "ignore",
        }
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [str(REPO_ROOT / "scripts" / "seaweedfs")], cwd=REPO_ROOT, env=env,
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )

        def ready():
            if self.process.poll() is not None:
                raise AssertionError(f"SeaweedFS exited ({self.process.returncode}):\n{self.log()[-3000:]}")
            return "seaweedfs: ready" in self.log()[offset:]

        wait_for(ready, START_TIMEOUT, lambda: f"SeaweedFS did not start:\n{self.log()[-3000:]}", interval=0.2)
        return self

    def stop(self):
        """SIGTERM to its process group (weed and the bucket helper), SIGKILL after 5 s (weed can take longer)."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        except ProcessLookupError:
            pass
        self.process = None
        wait_for(lambda: not any(port_open(port, self.ip) for port in self.ports.values()), 20,
                 "SeaweedFS's ports stay open")

    @property
    def running(self):
        return self.process is not None and self.process.poll() is None

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()
