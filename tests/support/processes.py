"""Waiting, ports and processes: the helpers every test level and the benchmarks share, once."""
import contextlib
import socket
import time
from pathlib import Path


def wait_for(predicate, timeout=10, message="condition not met", interval=0.2):
    """The predicate's first truthy value; AssertionError(message) after `timeout` seconds (a
    callable message is called then, so that it can say what the state was)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(message() if callable(message) else message)
        time.sleep(interval)


# Every port this process has handed out. The kernel offers a port again as soon as the probe
# socket closes, so two callers (two services of one suite: nameko binds with SO_REUSEPORT, and a
# user_service and a process_service once shared a port; or a server bound to another address than
# the probe's) could be given the same port before either bound it.
_handed_out = set()


def free_port(avoid=()):
    """A port free on 127.0.0.1 and never handed out before by this process."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in avoid and claim_port(port):
            return port


def claim_port(port):
    """Takes `port` for this process if it is free and not handed out yet; whether it did."""
    if port in _handed_out:
        return False
    try:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", port))
    except OSError:
        return False
    _handed_out.add(port)
    return True


def port_open(port, host="127.0.0.1"):
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def children_of(pid):
    """Direct children pids (from /proc/<pid>/task/*/children)."""
    result = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            result.extend(int(child) for child in (task / "children").read_text().split())
    return result


def descendants(pid):
    """Every live process below `pid`, children first."""
    found, todo = [], [pid]
    while todo:
        children = children_of(todo.pop())
        found.extend(children)
        todo.extend(children)
    return found


def program_pid(pid):
    """The pid of the program itself when `pid` is a shell (honcho's `/bin/sh -c`, scripts/respawn)
    waiting for it as its only child."""
    for _ in range(4):
        try:
            argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
        except OSError:
            return pid
        children = children_of(pid)
        if not argv0.endswith(b"sh") or len(children) != 1:
            return pid
        pid = children[0]
    return pid
