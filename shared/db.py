"""PostgreSQL for nameko services: nameko-sqlalchemy's provider, configured by this project's names.

`Database(Base, "USER_DATABASE_URL")` uses that key when set, else `DATABASE_URL`. Each engine is
instrumented for tracing (when spans are exported), checks connections before use (PostgreSQL restarts leave dead ones in the
pool) and fails fast when the server is away instead of holding a worker.
"""
import logging

import sqlalchemy.exc
from nameko_sqlalchemy import Database as _Database
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from sqlalchemy import create_engine, text
from sqlalchemy.orm import sessionmaker
from nameko_sqlalchemy.database import Session

from shared.settings import database_url
from shared.tracing import spans_exported

log = logging.getLogger(__name__)

ENGINE_OPTIONS = {
    # SQL errors must not quote row values into logs (password hashes, emails).
    "hide_parameters": True,
    "pool_pre_ping": True,
    "pool_size": 10,
    "max_overflow": 20,
    "pool_timeout": 10,
    "connect_args": {"connect_timeout": 5},
}


def make_engine(url, **options):
    engine = create_engine(url, **{**ENGINE_OPTIONS, **options})
    if spans_exported():  # else its spans would be made and dropped (shared/tracing.py)
        SQLAlchemyInstrumentor().instrument(engine=engine, enable_commenter=False)
    return engine


class Database(_Database):
    def __init__(self, declarative_base, url_key, **kwargs):
        self.url_key = url_key
        super().__init__(declarative_base, **kwargs)

    def setup(self):
        self.db_uri = database_url(self.container.config, self.url_key)
        self.engine = make_engine(self.db_uri, **self.engine_options)
        self.Session = sessionmaker(bind=self.engine, class_=Session, **self.session_options)

    def worker_teardown(self, worker_ctx):
        # Closing a session rolls back on its connection; if PostgreSQL restarted meanwhile that
        # raises, and an exception here would kill the whole service container.
        try:
            super().worker_teardown(worker_ctx)
        except sqlalchemy.exc.DBAPIError as exc:
            log.warning("closing a database session failed: %s", exc)

    def ping(self):
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
