"""OpenTelemetry for nameko 2.14: one trace per request across HTTP, RPC and events.

- `Tracing` (a DependencyProvider every service declares) opens the entrypoint's span (HTTP and RPC:
  server span; event handler: consumer span) with the parent taken from the incoming W3C
  `traceparent`, and makes it the current context of the worker greenlet.
- `TracedEventDispatcher` and `TracedRpcProxy` replace nameko's own: they open producer/client spans and compute
  their message headers when they send, not when they are injected (nameko's `EventDispatcher` reads
  the headers before `worker_setup`, which would parent events on the wrong span). Both also bound
  how long a call may block (a broker in a resource alarm blocks publishers while it lasts; 2.14 RPC
  has no timeout).

Exporters are chosen by OpenTelemetry's own variables only (`OTEL_TRACES_EXPORTER`, `OTEL_EXPORTER_OTLP_*`).
Unset, nothing is exported and nothing is logged about it.
"""
import logging
import os
import re
import secrets
from contextlib import contextmanager

from nameko import events as nameko_events
from nameko import rpc as nameko_rpc
from nameko.extensions import DependencyProvider
from nameko.messaging import HEADER_PREFIX
from nameko.timer import Timer
from nameko.web.handlers import HttpRequestHandler
from opentelemetry import context, propagate, trace
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from shared import deadline, errors, logs
from shared.settings import setting

log = logging.getLogger(__name__)

TRACER_NAME = "imageproc"
# The only context keys a worker forwards; broker headers (x-death, retry counts) are dropped.
PROPAGATED_KEYS = ("traceparent", "tracestate")
# OpenTelemetry Python's own variable for URLs not to trace (regexes, comma separated): probes and
# scrapes would otherwise bury the requests that matter.
DEFAULT_EXCLUDED_URLS = "/healthz,/metrics"

_configured = False


def configure_tracing(service_name):
    """Installs the process's tracer provider once; exporters come from OTEL_TRACES_EXPORTER."""
    global _configured
    if _configured:
        return
    _configured = True
    os.environ.setdefault("OTEL_SERVICE_NAME", service_name)
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    for name in _exporter_names():
        exporter = _exporter(name)
        if exporter is not None:
            provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    if spans_exported():
        RedisInstrumentor().instrument()


def _exporter_names():
    return [name.strip().lower() for name in os.environ.get("OTEL_TRACES_EXPORTER", "none").split(",")]


def spans_exported():
    """Whether this process exports spans at all. Without an exporter, the spans of every Redis
    command and SQL statement (`RedisInstrumentor`, shared/db.py) are made and thrown away, a few
    per request in every service; they are instrumented only when someone can see them. The spans
    of the hops themselves (HTTP, RPC, events) are always made: the trace context they carry is
    what joins the services' log lines, exported or not."""
    return any(name not in ("", "none") for name in _exporter_names())


def _exporter(name):
    if name in ("", "none"):
        return None
    if name == "console":
        return ConsoleSpanExporter()
    if name == "otlp":
        protocol = os.environ.get(
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        )
        if protocol != "http/protobuf":
            # The gRPC exporter's threads conflict with eventlet; OTLP over HTTP carries the same data.
            log.warning("OTLP protocol %s is not supported here; using http/protobuf", protocol)
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    log.warning("unknown OTEL_TRACES_EXPORTER %r ignored", name)
    return None


def tracer():
    return trace.get_tracer(TRACER_NAME)


def current_trace_id():
    span_context = trace.get_current_span().get_span_context()
    return format(span_context.trace_id, "032x") if span_context.is_valid else None


def _excluded_url_patterns():
    raw = os.environ.get("OTEL_PYTHON_EXCLUDED_URLS", DEFAULT_EXCLUDED_URLS)
    return [re.compile(part.strip()) for part in raw.split(",") if part.strip()]


def _unsampled_span():
    # A span that records nothing; children inherit "not sampled" (the default sampler is
    # parent-based), so SQL, Redis and RPC spans under it are dropped too.
    span_context = SpanContext(
        trace_id=int(secrets.token_hex(16), 16),
        span_id=int(secrets.token_hex(8), 16),
        is_remote=False,
        trace_flags=TraceFlags(TraceFlags.DEFAULT),
    )
    return NonRecordingSpan(span_context)


@contextmanager
def unsampled():
    """Runs housekeeping (timers, background loops) without making traces of it."""
    token = context.attach(trace.set_span_in_context(_unsampled_span()))
    try:
        yield
    finally:
        context.detach(token)


def _describe_entrypoint(worker_ctx):
    entrypoint = worker_ctx.entrypoint
    service = worker_ctx.service_name
    if isinstance(entrypoint, HttpRequestHandler):
        request = worker_ctx.args[0]
        return SpanKind.SERVER, f"{entrypoint.method} {entrypoint.url}", {
            "http.request.method": request.method,
            "url.path": request.path,
            "http.route": entrypoint.url,
        }
    if isinstance(entrypoint, nameko_events.EventHandler):
        return SpanKind.CONSUMER, f"{entrypoint.source_service}.{entrypoint.event_type} process", {
            "messaging.system": "rabbitmq",
            "messaging.operation": "process",
            "messaging.destination.name": f"{entrypoint.source_service}.events",
            "messaging.rabbitmq.destination.routing_key": entrypoint.event_type,
        }
    if isinstance(entrypoint, nameko_rpc.Rpc):
        return SpanKind.SERVER, f"{service}.{entrypoint.method_name}", {
            "rpc.system": "nameko",
            "rpc.service": service,
            "rpc.method": entrypoint.method_name,
        }
    return SpanKind.INTERNAL, f"{service}.{entrypoint.method_name}", {}


class Tracing(DependencyProvider):
    """Opens the span of every worker and makes it the parent of all that the worker does."""

    def __init__(self):
        self._active = {}

    def setup(self):
        configure_tracing(self.container.service_name)
        logs.set_service_name(self.container.service_name)
        self.excluded_urls = _excluded_url_patterns()

    def worker_setup(self, worker_ctx):
        carrier = {key: worker_ctx.data[key] for key in PROPAGATED_KEYS if key in worker_ctx.data}
        for key in list(worker_ctx.data):
            if key not in PROPAGATED_KEYS:
                worker_ctx.data.pop(key)
        if self._untraced(worker_ctx):
            span, parent = _unsampled_span(), context.get_current()
        else:
            parent = propagate.extract(carrier)
            kind, name, attributes = _describe_entrypoint(worker_ctx)
            span = tracer().start_span(name, context=parent, kind=kind, attributes=attributes)
        token = context.attach(trace.set_span_in_context(span, parent))
        self._active[worker_ctx] = (span, token)
        logs.clear()
        _write_trace_context(worker_ctx)

    def _untraced(self, worker_ctx):
        entrypoint = worker_ctx.entrypoint
        if isinstance(entrypoint, Timer):
            return True
        if isinstance(entrypoint, HttpRequestHandler):
            path = worker_ctx.args[0].path
            return any(pattern.search(path) for pattern in self.excluded_urls)
        return False

    def worker_result(self, worker_ctx, result=None, exc_info=None):
        span, _ = self._active.get(worker_ctx, (None, None))
        if span is None or not span.is_recording():
            return
        if exc_info is not None:
            exc = exc_info[1]
            span.record_exception(exc)
            expected = isinstance(exc, worker_ctx.entrypoint.expected_exceptions)
            if not expected or not isinstance(exc, errors.ApiError):
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        status = _http_status(result)
        if status is not None:
            span.set_attribute("http.response.status_code", status)

    def worker_teardown(self, worker_ctx):
        span, token = self._active.pop(worker_ctx, (None, None))
        if span is None:
            return
        span.end()
        context.detach(token)


def _http_status(result):
    if isinstance(result, tuple) and result and isinstance(result[0], int):
        return result[0]
    return getattr(result, "status_code", None)


def _write_trace_context(worker_ctx):
    # RPC proxies read worker_ctx.data when they send: keep it in step with the current span.
    carrier = {}
    propagate.inject(carrier)
    for key in PROPAGATED_KEYS:
        worker_ctx.data.pop(key, None)
    worker_ctx.data.update({key: value for key, value in carrier.items() if key in PROPAGATED_KEYS})


def _headers_for_current_span(encoder, worker_ctx):
    headers = encoder.get_message_headers(worker_ctx)
    carrier = {}
    propagate.inject(carrier)
    for key in PROPAGATED_KEYS:
        headers.pop(f"{HEADER_PREFIX}.{key}", None)
        if key in carrier:
            headers[f"{HEADER_PREFIX}.{key}"] = carrier[key]
    return headers


class TracedEventDispatcher(nameko_events.EventDispatcher):
    """nameko's dispatcher, with a producer span and headers computed at dispatch time.

    A publish returns within `publish_timeout` (PUBLISH_TIMEOUT_SECONDS when not given): RabbitMQ
    blocks publishers while a resource alarm lasts, and the caller must learn of it (and keep the
    event in its outbox) rather than hang (shared/deadline.py).
    """

    def __init__(self, publish_timeout=None, **kwargs):
        self.publish_timeout = publish_timeout
        super().__init__(**kwargs)

    def setup(self):
        if self.publish_timeout is None:
            self.publish_timeout = setting(self.container.config, "PUBLISH_TIMEOUT_SECONDS")
        super().setup()

    def get_dependency(self, worker_ctx):
        def dispatch(event_type, event_data):
            attributes = {
                "messaging.system": "rabbitmq",
                "messaging.operation": "publish",
                "messaging.destination.name": self.exchange.name,
                "messaging.rabbitmq.destination.routing_key": event_type,
            }
            name = f"{self.container.service_name}.{event_type} publish"
            with tracer().start_as_current_span(name, kind=SpanKind.PRODUCER, attributes=attributes):
                headers = _headers_for_current_span(self, worker_ctx)
                deadline.call_within(
                    self.publish_timeout, errors.ServiceUnavailable("event broker did not accept the event in time"),
                    self.publisher.publish, event_data, exchange=self.exchange, routing_key=event_type,
                    extra_headers=headers,
                )

        return dispatch


class TracedRpcProxy(nameko_rpc.RpcProxy):
    """nameko's RPC proxy with a client span per call and a timeout (2.14 waits forever).
    Without an explicit `timeout`, RPC_TIMEOUT_SECONDS from the configuration applies."""

    def __init__(self, target_service, timeout=None, **options):
        self.timeout = timeout
        super().__init__(target_service, **options)

    def setup(self):
        if self.timeout is None:
            self.timeout = setting(self.container.config, "RPC_TIMEOUT_SECONDS")
        super().setup()

    def get_dependency(self, worker_ctx):
        # A request nobody waits for any more must not run later (a service that was down would
        # otherwise find every timed-out call in its queue when it comes back): it expires with
        # the caller's timeout.
        options = {"expiration": self.timeout, **self.options}
        return TracedServiceProxy(
            worker_ctx, self.target_service, self.rpc_reply_listener, self.timeout, **options
        )


class TracedServiceProxy(nameko_rpc.ServiceProxy):
    def __init__(self, worker_ctx, service_name, reply_listener, timeout, **options):
        super().__init__(worker_ctx, service_name, reply_listener, **options)
        self.timeout = timeout

    def __getattr__(self, name):
        method = super().__getattr__(name)

        def call(*args, **kwargs):
            attributes = {"rpc.system": "nameko", "rpc.service": self.service_name, "rpc.method": name}
            with tracer().start_as_current_span(
                f"{self.service_name}.{name}", kind=SpanKind.CLIENT, attributes=attributes
            ):
                saved = {key: self.worker_ctx.data.get(key) for key in PROPAGATED_KEYS}
                _write_trace_context(self.worker_ctx)
                try:
                    timeout = errors.ServiceUnavailable(f"{self.service_name} did not answer in time")
                    return deadline.call_within(self.timeout, timeout, method, *args, **kwargs)
                finally:
                    for key, value in saved.items():
                        if value is None:
                            self.worker_ctx.data.pop(key, None)
                        else:
                            self.worker_ctx.data[key] = value

        return call
