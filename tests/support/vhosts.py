"""RabbitMQ vhosts for the tests, made and removed in batches.

Every integration test gets a vhost of its own (durable queues left by one test never feed the
next). One `rabbitmqctl` call costs about 0.4 s (it boots an Erlang VM), and a vhost took three
(add, permissions, delete): 1.2-1.7 s per test, most of the integration level's time. Here one call
makes a batch of vhosts with their permissions (`import_definitions`, RabbitMQ >= 3.8) and one
removes a batch of used ones (`eval` of rabbit_vhost:delete/2, or one `delete_vhost` each where
that internal function differs): ~1.4 s per 50.
"""
import json
import subprocess
import uuid

BATCH = 25
USER = "guest"


def rabbitmqctl(*args, check=True, input=None):
    return subprocess.run(["rabbitmqctl", "-q", *args], check=check, capture_output=True, text=True, timeout=120,
                          input=input)


def create_vhosts(names, user=USER):
    definitions = {
        "vhosts": [{"name": name} for name in names],
        "permissions": [
            {"user": user, "vhost": name, "configure": ".*", "write": ".*", "read": ".*"} for name in names
        ],
    }
    # From standard input: a file would be read by the broker's own user, not this one.
    rabbitmqctl("import_definitions", "--format", "json", input=json.dumps(definitions))


def create_vhost(vhost):
    """A RabbitMQ vhost the guest user may use."""
    create_vhosts([vhost])


def delete_vhost(vhost, check=True):
    rabbitmqctl("delete_vhost", vhost, check=check)


def reset_vhost(vhost):
    """The RabbitMQ vhost, empty: deleted (with every queue) if it was there, and made again."""
    delete_vhost(vhost, check=False)
    create_vhost(vhost)


def delete_vhosts(names):
    if not names:
        return
    binaries = ", ".join('<<"' + name + '">>' for name in names)
    deleted = rabbitmqctl("eval", f'[rabbit_vhost:delete(V, <<"tests">>) || V <- [{binaries}]].', check=False)
    if deleted.returncode != 0 or "error" in deleted.stdout:
        for name in names:
            delete_vhost(name, check=False)


class VhostPool:
    """Fresh vhosts, never handed out twice; `close` removes every one it made."""

    def __init__(self, prefix, batch=BATCH):
        self.prefix = prefix
        self.batch = batch
        self._fresh = []
        self._used = []

    def take(self):
        if not self._fresh:
            names = [f"{self.prefix}_{uuid.uuid4().hex[:8]}" for _ in range(self.batch)]
            create_vhosts(names)
            self._fresh = names
        return self._fresh.pop()

    def give_back(self, name):
        self._used.append(name)
        if len(self._used) >= self.batch:
            used, self._used = self._used, []
            delete_vhosts(used)

    def close(self):
        leftover, self._fresh, self._used = self._fresh + self._used, [], []
        delete_vhosts(leftover)
