"""The HTTP entrypoint every service uses: JSON in, JSON out, errors in the contract's envelope.

`MAPPED_ERRORS` is the one table from exception class to HTTP status and stable error code. An
exception not in it is a 500 with a generic body that names the trace id to look for in the logs:
never an HTML page, never a traceback.
"""
import json
import logging
import secrets
from functools import partial

import eventlet
import kombu.exceptions
import redis.exceptions
import sqlalchemy.exc
from eventlet.event import Event

from nameko.exceptions import BadRequest, ContainerBeingKilled
from nameko.web.handlers import HttpRequestHandler
from nameko.web.server import WebServer, WsgiApp
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Request, Response

from shared import errors, transient

log = logging.getLogger(__name__)

MAPPED_ERRORS = {
    errors.ValidationError: (400, "validation_error"),
    errors.InvalidOperations: (400, "invalid_operations"),
    errors.Unauthorized: (401, "unauthorized"),
    errors.InvalidCredentials: (401, "invalid_credentials"),
    errors.NotFound: (404, "not_found"),
    errors.EmailTaken: (409, "email_taken"),
    errors.NotReady: (409, "not_ready"),
    errors.TooLarge: (413, "too_large"),
    errors.UnsupportedMediaType: (415, "unsupported_media_type"),
    errors.TooManyRequests: (429, "too_many_requests"),
    errors.InsufficientStorage: (507, "insufficient_storage"),
    errors.ServiceUnavailable: (503, "service_unavailable"),
}

# werkzeug raises these while routing or parsing; their codes keep the contract's vocabulary.
WERKZEUG_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    411: "length_required",
    413: "too_large",
    415: "unsupported_media_type",
}

TRACE_HEADERS = ("traceparent", "tracestate")
LISTEN_BACKLOG = 2048


def json_response(payload, status=200, headers=None):
    return Response(
        json.dumps(payload, separators=(",", ":"), default=str),
        status=status,
        headers=headers,
        mimetype="application/json",
    )


def error_response(status, code, message, details=None, headers=None):
    return json_response(
        {"error": {"code": code, "message": message, "details": details or {}}},
        status=status,
        headers=headers,
    )


def new_traceparent():
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def trace_id_of(request):
    traceparent = request.environ.get("HTTP_TRACEPARENT", "")
    parts = traceparent.split("-")
    return parts[1] if len(parts) == 4 else None


class JsonWsgiApp(WsgiApp):
    """Answers routing errors (unknown path, wrong method) with the JSON envelope too."""

    def __call__(self, environ, start_response):
        request = Request(environ, shallow=True)
        adapter = self.url_map.bind_to_environ(environ)
        try:
            provider, values = adapter.match()
            request.path_values = values
            response = provider.handle_request(request)
        except HTTPException as exc:
            response = error_response(
                exc.code,
                WERKZEUG_CODES.get(exc.code, "http_error"),
                exc.description or exc.name,
                headers=exc.get_headers() if exc.code == 405 else None,
            )
            if exc.code == 405:
                response.headers["Content-Type"] = "application/json"
        return response(environ, start_response)


class JsonWebServer(WebServer):
    """A WebServer that speaks JSON on every path and takes the W3C trace context from HTTP headers.

    nameko's stock server passes no header to the worker; we pass the trace headers only (never
    Authorization or cookies: everything in worker context data travels on every outgoing message).
    A request without a `traceparent` gets one here, so that the trace id is known even for errors.
    """

    def get_wsgi_app(self):
        return JsonWsgiApp(self)

    def start(self):
        # nameko listens with eventlet's default backlog of 50: a burst of connections overflows
        # it and nginx sees resets (502). The kernel caps this at net.core.somaxconn.
        if not self._starting:
            self._starting = True
            self._sock = eventlet.listen(self.bind_addr, backlog=LISTEN_BACKLOG)
            self._sock.settimeout(None)  # as nameko: works around kombu issue 838
            self._serv = self.get_wsgi_server(self._sock, self.get_wsgi_app())
            self._gt = self.container.spawn_managed_thread(self.run)

    def context_data_from_headers(self, request):
        if not request.headers.get("traceparent"):
            request.environ["HTTP_TRACEPARENT"] = new_traceparent()
        return {name: request.headers[name] for name in TRACE_HEADERS if name in request.headers}


class HttpEntrypoint(HttpRequestHandler):
    """`@http` for every service: dict results become JSON, mapped exceptions become the envelope."""

    server = JsonWebServer()
    mapped_errors = MAPPED_ERRORS

    def __init__(self, method, url, expected_exceptions=(), **kwargs):
        # Every contract error is expected: nameko then logs it as a normal outcome, not a crash.
        expected = tuple(self.mapped_errors) + tuple(expected_exceptions)
        super().__init__(method, url, expected_exceptions=expected, **kwargs)

    def response_from_result(self, result):
        if isinstance(result, Response):
            return result
        status, headers, payload = 200, None, result
        if isinstance(result, tuple):
            if len(result) == 3:
                status, headers, payload = result
            else:
                status, payload = result
        if payload is None:
            return Response(status=status, headers=headers)
        if isinstance(payload, (dict, list)):
            return json_response(payload, status=status, headers=headers)
        return Response(payload, status=status, headers=headers)

    def handle_request(self, request):
        # As nameko's own, but the request reaches the error path so a 500 can name its trace id.
        request.shallow = False
        try:
            context_data = self.server.context_data_from_headers(request)
            args, kwargs = self.get_entrypoint_parameters(request)
            self.check_signature(args, kwargs)
            event = Event()
            self.container.spawn_worker(
                self, args, kwargs, context_data=context_data,
                handle_result=partial(self.handle_result, event),
            )
            return self.response_from_result(event.wait())
        except Exception as exc:
            return self.response_from_exception(exc, request)

    def response_from_exception(self, exc, request=None):
        for cls in type(exc).__mro__:
            if cls in self.mapped_errors:
                status, code = self.mapped_errors[cls]
                headers = {"WWW-Authenticate": 'Bearer realm="imageproc"'} if status == 401 else None
                return error_response(status, code, exc.message, exc.details, headers=headers)
        if isinstance(exc, ContainerBeingKilled):
            # This process is going away (shared/container.py); its supervisor starts another.
            return error_response(
                503, "service_unavailable", "The service is restarting; try again shortly", headers={"Retry-After": "1"}
            )
        if isinstance(exc, transient.OVERLOAD_ERRORS):
            return error_response(
                503, "service_unavailable", "The service is busy; try again shortly", headers={"Retry-After": "1"}
            )
        if isinstance(exc, transient.SERVER_AWAY_ERRORS):
            log.warning("%s unavailable to %s: %s", dependency_name(exc), self.method_name, exc)
            return error_response(
                503, "service_unavailable", "The service is temporarily unavailable; try again shortly",
                headers={"Retry-After": "5"},
            )
        if isinstance(exc, HTTPException):
            return error_response(
                exc.code, WERKZEUG_CODES.get(exc.code, "http_error"), exc.description or exc.name
            )
        if isinstance(exc, BadRequest):
            return error_response(400, "bad_request", "The request does not match this endpoint")
        trace_id = trace_id_of(request) if request is not None else None
        log.error("unhandled error in %s", self.method_name, exc_info=exc, extra={"trace_id": trace_id})
        return error_response(
            500,
            "internal_error",
            "Something went wrong on our side; the trace id identifies it in the logs",
            {"trace_id": trace_id},
        )


def dependency_name(exc):
    if isinstance(exc, sqlalchemy.exc.SQLAlchemyError):
        return "the database"
    if isinstance(exc, redis.exceptions.RedisError):
        return "Redis"
    if isinstance(exc, kombu.exceptions.KombuError):
        return "the broker"
    return "a server"


http = HttpEntrypoint.decorator
