"""What "transient" means, defined once: an error that says "later", not "never".

A server away or restarting (`SERVER_AWAY_ERRORS`) or saturated (`OVERLOAD_ERRORS`).
`TRANSIENT_ERRORS` is both, plus another service saying it is unavailable: a handler retries these
later (shared/delivery.py), an HTTP entrypoint answers them with 503 and `Retry-After`
(shared/http.py), the database helpers retry them (shared/db.py).
"""
import kombu.exceptions
import redis.exceptions
import sqlalchemy.exc

from shared import errors


# A server this service needs is down or restarting: PostgreSQL, the broker, Redis, a peer's socket.
DATABASE_AWAY_ERRORS = (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError)
SERVER_AWAY_ERRORS = (
    *DATABASE_AWAY_ERRORS,
    kombu.exceptions.OperationalError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    ConnectionError,
    TimeoutError,
)
# Saturated, not a bug: every pooled database connection stayed busy longer than the pool waits.
OVERLOAD_ERRORS = (sqlalchemy.exc.TimeoutError,)
# The database cannot serve now, away or saturated.
DATABASE_UNAVAILABLE_ERRORS = (*DATABASE_AWAY_ERRORS, *OVERLOAD_ERRORS)

TRANSIENT_ERRORS = (*SERVER_AWAY_ERRORS, *OVERLOAD_ERRORS, errors.ServiceUnavailable)


def is_transient(exc):
    return isinstance(exc, TRANSIENT_ERRORS)
