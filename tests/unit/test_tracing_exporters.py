"""shared/tracing.py: Redis and SQL spans are made only when spans are exported at all."""
import pytest

from shared.tracing import spans_exported


@pytest.mark.parametrize("value, exported", [
    (None, False), ("none", False), ("", False), (" None ", False),
    ("otlp", True), ("console", True), ("none,otlp", True),
])
def test_spans_are_exported_only_with_an_exporter(monkeypatch, value, exported):
    if value is None:
        monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    else:
        monkeypatch.setenv("OTEL_TRACES_EXPORTER", value)
    assert spans_exported() is exported
