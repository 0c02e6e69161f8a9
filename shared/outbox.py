"""Transactional outbox: an event is stored in the same transaction as the change it announces,
then published; nothing accepted is lost if the broker is away at that moment.

- `add()` writes the event row with the caller's session (commit it with the change).
- `publish_pending()` sends unsent rows oldest first and marks them sent. `relay()` runs it right
  after the commit for the rows that request wrote (fast path: a request never publishes others'
  rows, so a burst does not hold a connection per request for a whole batch) and from a timer for
  all rows (the relay, which also covers a crash between commit and publish). While a publish is
  stuck behind the broker (shared/deadline.py) requests leave their rows to the timer. Rows are claimed
  with `FOR UPDATE SKIP LOCKED`, so concurrent relays never double-send; a publish that succeeds
  but whose mark is lost is sent again, so consumers are idempotent.
- Each event carries the trace context of the request that caused it.
"""
import datetime as dt
import logging
import uuid

from opentelemetry import context as otel_context
from opentelemetry import propagate
from sqlalchemy import JSON, Column, DateTime, Integer, String, delete, select
from sqlalchemy.dialects.postgresql import UUID

from shared import deadline

log = logging.getLogger(__name__)

BATCH_SIZE = 100


def utcnow():
    return dt.datetime.now(dt.timezone.utc)


def outbox_model(Base, table_name):
    """The outbox table of one service (each service owns its own)."""
    return type(
        "OutboxEvent",
        (Base,),
        {
            "__tablename__": table_name,
            "id": Column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4),
            "event_type": Column(String(100), nullable=False),
            "payload": Column(JSON, nullable=False),
            "trace_context": Column(JSON, nullable=False, default=dict),
            "created_at": Column(DateTime(timezone=True), nullable=False, default=utcnow, index=True),
            "published_at": Column(DateTime(timezone=True), nullable=True, index=True),
            "attempts": Column(Integer, nullable=False, default=0),
        },
    )


class Outbox:
    def __init__(self, model):
        self.model = model

    def add(self, session, event_type, payload):
        carrier = {}
        propagate.inject(carrier)
        # The id is chosen here, not at INSERT, so the caller can relay this row after its commit.
        row = self.model(id=uuid.uuid4(), event_type=event_type, payload=payload, trace_context=carrier)
        session.add(row)
        return row

    def relay(self, session_factory, dispatch, only=None):
        """`publish_pending()` that never fails its caller: what is not sent now, the timer sends.
        `only`: ids of the rows just added (after their commit); else every pending row, batch
        after batch (a backlog after a broker outage goes out in one run)."""
        if only is not None and deadline.stalled():
            # A publish of this process is stuck behind the broker (a resource alarm): the request
            # does not queue up behind it; the timer's relay sends these rows when the broker can.
            return 0
        sent = 0
        try:
            while True:
                batch = self.publish_pending(session_factory, dispatch, only=only)
                sent += batch
                if only is not None or batch < BATCH_SIZE:
                    return sent
        except Exception as exc:  # noqa: BLE001 - the relay retries on its next run
            log.warning("outbox relay failed: %s", exc)
            return sent

    def publish_pending(self, session_factory, dispatch, limit=BATCH_SIZE, only=None):
        """Publishes unsent events; returns how many were sent. Stops at the first failure
        (the broker is likely away) and leaves the rest for the next relay run."""
        sent = 0
        statement = select(self.model).where(self.model.published_at.is_(None))
        if only is not None:
            statement = statement.where(self.model.id.in_(list(only)))
        with session_factory() as session:
            rows = session.scalars(
                statement.order_by(self.model.created_at).limit(limit).with_for_update(skip_locked=True)
            ).all()
            for row in rows:
                try:
                    self._publish(row, dispatch)
                except Exception as exc:  # any broker failure: keep the row for the next run
                    row.attempts += 1
                    log.warning("outbox publish of %s failed: %s", row.event_type, exc)
                    break
                row.published_at = utcnow()
                sent += 1
            session.commit()
        return sent

    def delete_published_before(self, session, cutoff):
        session.execute(delete(self.model).where(self.model.published_at < cutoff))

    @staticmethod
    def _publish(row, dispatch):
        token = otel_context.attach(propagate.extract(row.trace_context or {}))
        try:
            dispatch(row.event_type, row.payload)
        finally:
            otel_context.detach(token)
