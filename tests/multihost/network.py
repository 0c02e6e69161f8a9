"""Hosts on one Linux machine: network namespaces on a bridge, each with an address of its own.

    with Network() as network:                      # a bridge; the root namespace is its .1
        web = network.add_host("web")               # a namespace, its veth, 10.<n>.<m>.<k>
        process = web.start(["nginx", ...], env, log_path)
        web.cut_off(); web.reconnect()              # its link down and up again
        web.kill_all()                              # SIGKILL to every process in the namespace
    # every namespace, link and process it made is gone, whatever happened

The root namespace is the infrastructure host: its servers listen on the bridge's address. Needs
root and iproute2. Names carry a short random id, so two runs (or a crashed run's leftovers) never
collide; nothing outside the names it made is touched.
"""
import contextlib
import os
import random
import signal
import subprocess
import time
import uuid

COMMAND_TIMEOUT = 30


def ip(*args, namespace=None, check=True):
    command = ["ip", *(["-n", namespace] if namespace else []), *map(str, args)]
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=COMMAND_TIMEOUT)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {result.stdout.strip()}")
    return result.stdout


class Host:
    """One network namespace: a machine with one interface on the bridge and its own loopback."""

    def __init__(self, network, name, address):
        self.network = network
        self.name = name
        self.address = address
        self.namespace = f"{network.tag}-{name}"
        self.outside_link = f"{network.tag}{len(network.hosts)}"  # <= 15 characters, on the bridge
        self.processes = []

    def create(self):
        ip("netns", "add", self.namespace)
        ip("link", "add", self.outside_link, "type", "veth", "peer", "name", "eth0", "netns", self.namespace)
        ip("link", "set", self.outside_link, "master", self.network.bridge, "up")
        ip("addr", "add", f"{self.address}/24", "dev", "eth0", namespace=self.namespace)
        ip("link", "set", "eth0", "up", namespace=self.namespace)
        ip("link", "set", "lo", "up", namespace=self.namespace)

    def start(self, command, env, log_path, cwd=None):
        """A process in this host's namespace, its output to `log_path`, in a session of its own."""
        log = open(log_path, "ab")
        process = subprocess.Popen(["ip", "netns", "exec", self.namespace, *command], env=env, cwd=cwd,
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.processes.append(process)
        return process

    def pids(self):
        """Every process in the namespace, whoever started it (`ip netns pids`)."""
        return [int(pid) for pid in ip("netns", "pids", self.namespace, check=False).split()]

    def cut_off(self):
        """The host's link goes down: packets to and from it are lost, its processes run on."""
        ip("link", "set", self.outside_link, "down")

    def reconnect(self):
        ip("link", "set", self.outside_link, "up")

    def kill_all(self):
        """SIGKILL to every process of the host at once, as when its power goes."""
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)

    def stop_all(self, grace=15):
        """SIGTERM to every process of the host, SIGKILL to what is left after `grace` seconds."""
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while self.pids() and time.monotonic() < deadline:
            time.sleep(0.2)
        self.kill_all()

    def remove(self):
        self.stop_all(grace=5)
        ip("link", "del", self.outside_link, check=False)
        ip("netns", "del", self.namespace, check=False)


PODMAN_SUBNETS = {88, 89}


class Network:
    """A bridge `<tag>br` with the root namespace at `<prefix>.1`, and hosts from `<prefix>.10` up."""

    def __init__(self):
        self.tag = f"mh{uuid.uuid4().hex[:5]}"
        self.bridge = f"{self.tag}br"
        # Not 10.88/10.89: podman's default and compose networks (the compose test may run alongside).
        second = random.choice([octet for octet in range(64, 251) if octet not in PODMAN_SUBNETS])
        self.prefix = f"10.{second}.{random.randint(0, 255)}"
        self.address = f"{self.prefix}.1"  # the infrastructure host: the root namespace
        self.hosts = {}

    def __enter__(self):
        ip("link", "add", self.bridge, "type", "bridge")
        ip("addr", "add", f"{self.address}/24", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")
        return self

    def add_host(self, name):
        host = Host(self, name, f"{self.prefix}.{10 + len(self.hosts)}")
        self.hosts[name] = host
        host.create()
        return host

    def __exit__(self, *exc_info):
        for host in self.hosts.values():
            with contextlib.suppress(Exception):
                host.remove()
        ip("link", "del", self.bridge, check=False)
