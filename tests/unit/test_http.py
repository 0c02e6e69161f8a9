"""The shared HTTP entrypoint: every error is the contract's JSON envelope."""
import json

import pytest
from werkzeug.exceptions import RequestEntityTooLarge

from shared import errors
from shared.http import MAPPED_ERRORS, HttpEntrypoint


@pytest.fixture
def entrypoint():
    return HttpEntrypoint("GET", "/x")


@pytest.mark.parametrize("exc_class, expected", list(MAPPED_ERRORS.items()))
def test_each_contract_error_has_its_status_and_code(entrypoint, exc_class, expected):
    response = entrypoint.response_from_exception(exc_class("human readable", {"field": ["bad"]}))
    assert (response.status_code, json.loads(response.get_data())["error"]["code"]) == expected
    body = json.loads(response.get_data())
    assert body == {"error": {"code": expected[1], "message": "human readable", "details": {"field": ["bad"]}}}
    assert response.mimetype == "application/json"


def test_werkzeug_errors_keep_the_envelope(entrypoint):
    response = entrypoint.response_from_exception(RequestEntityTooLarge())
    assert response.status_code == 413
    assert json.loads(response.get_data())["error"]["code"] == "too_large"


def test_an_unexpected_error_is_a_generic_500_without_a_traceback(entrypoint):
    response = entrypoint.response_from_exception(KeyError("secret internals"))
    body = json.loads(response.get_data())
    assert response.status_code == 500
    assert body["error"]["code"] == "internal_error"
    assert "secret" not in response.get_data(as_text=True)


def test_remote_errors_arrive_as_the_callers_own_class():
    from nameko.exceptions import deserialize, serialize

    original = errors.NotFound("No user", {"id": "x"})
    copy = deserialize(serialize(original))
    assert type(copy) is errors.NotFound
    assert copy.message == "No user" and copy.details == {"id": "x"}


DEPENDENCY_FAILURES = [
    pytest.param(lambda: __import__("sqlalchemy.exc").exc.OperationalError("SELECT 1", {}, OSError("server closed")),
                 id="postgresql-down"),
    pytest.param(lambda: __import__("kombu.exceptions").exceptions.OperationalError("[Errno 111] refused"),
                 id="broker-down"),
    pytest.param(lambda: __import__("redis.exceptions").exceptions.ConnectionError("Error 111"), id="redis-down"),
    pytest.param(lambda: ConnectionRefusedError(111, "Connection refused"), id="socket-refused"),
]


@pytest.mark.parametrize("make_error", DEPENDENCY_FAILURES)
def test_a_server_that_is_down_is_a_503_to_retry_not_a_500(entrypoint, make_error):
    response = entrypoint.response_from_exception(make_error())
    body = json.loads(response.get_data())
    assert response.status_code == 503
    assert body["error"]["code"] == "service_unavailable"
    assert response.headers["Retry-After"] == "5"
    assert "refused" not in response.get_data(as_text=True) and "SELECT" not in response.get_data(as_text=True)
