"""JSON logs: one object a line, with the service, and inside a worker the trace and entity ids.

Wired through the `LOGGING` dictConfig in config.yaml, which `nameko run` applies.
"""
import contextvars
import logging
import os

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

_service_name = os.environ.get("OTEL_SERVICE_NAME")
# Entity ids at hand in the current worker (user_id, image_id); per greenlet, like the trace context.
_log_context = contextvars.ContextVar("log_context", default={})


def set_service_name(name):
    """OTEL_SERVICE_NAME, when the operator set one, names the service in logs as in traces."""
    global _service_name
    _service_name = os.environ.get("OTEL_SERVICE_NAME") or name


def bind(**ids):
    """Adds entity ids to every log line of the current worker: `bind(image_id=...)`."""
    _log_context.set({**_log_context.get(), **{k: str(v) for k, v in ids.items() if v is not None}})


def clear():
    _log_context.set({})


class ContextFilter(logging.Filter):
    def filter(self, record):
        record.service = _service_name or "unknown"
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            record.trace_id = format(span_context.trace_id, "032x")
            record.span_id = format(span_context.span_id, "016x")
        for key, value in _log_context.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class JsonFormatter(_JsonFormatter):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("fmt", "%(levelname)s %(name)s %(message)s")
        kwargs.setdefault("rename_fields", {"levelname": "level", "name": "logger"})
        kwargs.setdefault("timestamp", True)
        super().__init__(*args, **kwargs)
