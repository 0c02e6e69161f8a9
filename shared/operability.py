"""The probes every service answers: `GET /metrics`, `GET /healthz` (on its own port) and RPC
`health` (for the gateway's aggregate and for `nameko shell`). A service inherits them and declares
`_checks()`: {name: callable that raises when that dependency is unusable}."""

from shared.health import health_response
from shared.http import http
from shared.metrics import metrics_response
from shared.rpc import rpc


class Probes:
    @http("GET", "/metrics")
    def prometheus_metrics(self, request):
        self._refresh_gauges()
        return metrics_response()

    @http("GET", "/healthz")
    def healthz(self, request):
        return health_response(self.name, self._checks())

    @rpc
    def health(self):
        return health_response(self.name, self._checks())[1]

    def _refresh_gauges(self):
        """Gauges read at scrape time (queue depths); nothing by default."""

    def _checks(self):
        raise NotImplementedError
