"""Prometheus metrics: per-entrypoint requests and latency for every service, plus the domain
metrics each service registers here (kept in one module so names are defined once).

Each service exposes them at `GET /metrics` on its own port (not routed by the gateway).
"""
import time

from kombu import Connection
from nameko.extensions import DependencyProvider
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from werkzeug.wrappers import Response

ENTRYPOINT_CALLS = Counter(
    "imageproc_entrypoint_calls_total", "Entrypoint calls by outcome", ["service", "entrypoint", "outcome"]
)
ENTRYPOINT_SECONDS = Histogram(
    "imageproc_entrypoint_duration_seconds",
    "Time spent in an entrypoint",
    ["service", "entrypoint"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
OPERATION_SECONDS = Histogram(
    "imageproc_operation_duration_seconds",
    "Time spent in one pipeline step",
    ["operation", "output_format"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
IMAGES_FINISHED = Counter("imageproc_images_finished_total", "Images that reached a final status", ["status"])
EMAILS = Counter("imageproc_emails_total", "Emails by kind and outcome", ["kind", "outcome"])
WORK_WAITING = Gauge("imageproc_work_waiting", "Work waiting to be done", ["queue"])


def queue_depth(amqp_uri, queue_name):
    """Messages ready in a queue (a passive declare: it never creates the queue)."""
    with Connection(amqp_uri, connect_timeout=2) as connection:
        _, messages, _ = connection.default_channel.queue_declare(queue=queue_name, passive=True)
        return messages


def metrics_response():
    return Response(generate_latest(), status=200, mimetype=CONTENT_TYPE_LATEST.split(";")[0],
                    headers={"Content-Type": CONTENT_TYPE_LATEST})


class EntrypointMetrics(DependencyProvider):
    """Counts and times every worker of the service it is declared on."""

    def __init__(self):
        self._started = {}

    def worker_setup(self, worker_ctx):
        self._started[worker_ctx] = time.perf_counter()

    def worker_result(self, worker_ctx, result=None, exc_info=None):
        started = self._started.pop(worker_ctx, None)
        if started is None:
            return
        service, entrypoint = worker_ctx.service_name, worker_ctx.entrypoint.method_name
        ENTRYPOINT_SECONDS.labels(service, entrypoint).observe(time.perf_counter() - started)
        if exc_info is None:
            outcome = "ok"
        elif isinstance(exc_info[1], worker_ctx.entrypoint.expected_exceptions):
            outcome = "refused"
        else:
            outcome = "error"
        ENTRYPOINT_CALLS.labels(service, entrypoint, outcome).inc()

    def worker_teardown(self, worker_ctx):
        self._started.pop(worker_ctx, None)
