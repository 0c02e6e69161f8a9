"""Process-wide tuning every service applies when its container starts.

Garbage collection: a service holding a thousand long-polls keeps a large heap of long-lived
objects (modules, SQLAlchemy and OpenTelemetry state, greenlets), and CPython's full (generation 2)
collections scanned all of it: 100-200 ms pauses of the whole event loop in upload_service under
load (measured with gc callbacks during bench.longpoll), the tail of every probe and long-poll.
`gc.freeze()` once started moves everything created so far out of the collector's sight (it is
never garbage), and a higher generation-0 threshold collects less often for the short-lived
request objects, with the same guarantees of collecting cycles.
"""
import gc

from nameko.extensions import DependencyProvider

GC_THRESHOLDS = (10_000, 20, 20)  # CPython's defaults: (700, 10, 10)


class RuntimeTuning(DependencyProvider):
    def start(self):
        gc.collect()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)

    def get_dependency(self, worker_ctx):
        return None
