"""Readiness checks: each service names its dependencies and how to check each one.

A check is a callable that raises when its dependency is unusable; each runs under a timeout so a
hung dependency reads as down instead of hanging the probe.
"""
import logging
import time

import eventlet
from kombu import Connection

log = logging.getLogger(__name__)

CHECK_TIMEOUT = 3


def run_checks(checks):
    """Returns (ready, {name: "ok" | "error: ..."}); checks run concurrently."""

    def run(item):
        name, check = item
        try:
            with eventlet.Timeout(CHECK_TIMEOUT):
                check()
            return name, "ok"
        except eventlet.Timeout:
            return name, "error: timed out"
        except Exception as exc:  # a health probe reports every failure, whatever its type
            log.warning("health check %s failed: %s", name, exc)
            # A store says which one it is (s3://bucket, file:///path), never its endpoint or keys.
            store = getattr(exc, "details", {}).get("store") if isinstance(getattr(exc, "details", None), dict) else None
            return name, f"error: {type(exc).__name__}" + (f" ({store} unreachable)" if store else "")

    results = dict(eventlet.GreenPool(len(checks) or 1).imap(run, checks.items()))
    return all(value == "ok" for value in results.values()), results


# A broker that answered this recently is taken as up: opening an AMQP connection on every probe
# costs tens of milliseconds and a connection churn on the broker.
AMQP_OK_TTL_SECONDS = 5
_amqp_ok_at = {}


def check_amqp(amqp_uri):
    def check():
        if time.monotonic() - _amqp_ok_at.get(amqp_uri, float("-inf")) < AMQP_OK_TTL_SECONDS:
            return
        with Connection(amqp_uri, connect_timeout=CHECK_TIMEOUT) as connection:
            connection.ensure_connection(max_retries=1)
        _amqp_ok_at[amqp_uri] = time.monotonic()

    return check


def health_response(service_name, checks):
    ready, results = run_checks(checks)
    body = {"service": service_name, "status": "ok" if ready else "unavailable", "checks": results}
    return (200 if ready else 503), body
