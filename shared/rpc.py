"""nameko's `@rpc`, with the failures that say "later" sent as such.

An RPC method whose database is restarting (or Redis away: shared/transient.py) raises, say,
sqlalchemy's OperationalError. Sent as it is, the caller gets nameko's `RemoteError`, which it cannot
tell from a bug: an event handler would dead-letter its event instead of retrying it later, an HTTP
entrypoint would answer 500 instead of 503. Sent as `errors.ServiceUnavailable` (registered with
nameko, so it arrives as itself), every caller's own rules for "later" apply (shared/delivery.py,
shared/http.py). Every service's RPC methods use this `rpc`.
"""
from nameko import rpc as nameko_rpc

from shared import errors
from shared.transient import is_transient


class Rpc(nameko_rpc.Rpc):
    def handle_result(self, message, worker_ctx, result, exc_info):
        if exc_info is not None and is_transient(exc_info[1]) and not isinstance(exc_info[1], errors.ServiceUnavailable):
            failure = exc_info[1]
            unavailable = errors.ServiceUnavailable(
                f"{self.container.service_name} cannot answer right now ({type(failure).__name__})",
                {"dependency_error": type(failure).__name__},
            )
            exc_info = (errors.ServiceUnavailable, unavailable, exc_info[2])
        return super().handle_result(message, worker_ctx, result, exc_info)


rpc = Rpc.decorator
