"""What every service of the suite is made of, declared once: the probes (`GET /metrics`,
`GET /healthz`, RPC `health`), the runtime tuning, tracing, entrypoint metrics and configuration.
A service subclasses `Service`, names itself and declares its own dependencies and entrypoints."""
from nameko.dependency_providers import Config

from shared.metrics import EntrypointMetrics
from shared.operability import Probes
from shared.runtime import RuntimeTuning
from shared.tracing import Tracing


class Service(Probes):
    runtime = RuntimeTuning()
    tracing = Tracing()
    metrics = EntrypointMetrics()
    config = Config()
