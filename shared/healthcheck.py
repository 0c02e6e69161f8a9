"""The container image's HEALTHCHECK: exit 0 when this container's service answers `GET /healthz`
with 200, 1 otherwise.

It asks the address the service listens on (`WEB_SERVER_ADDRESS`, the same variable `nameko run`
reads through config.yaml), so one image serves all four services without a port per service in
the Dockerfile. Standard library only, and nothing from the services is imported: a probe runs
every few seconds and must cost little (no eventlet, no settings validation).

    python -m shared.healthcheck            # what Docker runs
"""
import os
import sys
import urllib.error
import urllib.request

DEFAULT_ADDRESS = "127.0.0.1:8000"
TIMEOUT_SECONDS = 4


def probe_url(address):
    """The /healthz URL of a `host:port` listen address; a wildcard host is probed on loopback."""
    host, _, port = address.rpartition(":")
    if host in ("", "0.0.0.0", "::", "[::]"):
        host = "127.0.0.1"
    return f"http://{host}:{port}/healthz"


def main():
    url = probe_url(os.environ.get("WEB_SERVER_ADDRESS") or DEFAULT_ADDRESS)
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
            healthy = response.status == 200
    except (OSError, urllib.error.URLError) as error:
        # HTTPError (a 503 while a dependency is down) is a URLError: unhealthy, with the reason.
        print(f"healthcheck: {url}: {error}", file=sys.stderr)
        return 1
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
