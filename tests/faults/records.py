"""What the services stored, read behind their backs: image rows, outboxes, files, queues, dead letters."""
import hashlib
import json

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from shared import deadletters
from tests.support.processes import wait_for

FINAL_STATUSES = ("completed", "failed")
DEAD_LETTER_QUEUE = "imageproc.dead-letters"


def sha256(data):
    return hashlib.sha256(data).hexdigest()


class Records:
    def __init__(self, database_url, amqp_uri, rabbit, store, describe=lambda: ""):
        self.engine = create_engine(database_url, poolclass=NullPool, connect_args={"connect_timeout": 5})
        self.amqp_uri = amqp_uri
        self.rabbit = rabbit
        self.store = store  # tests/support/stored.py: either store, seen the same way
        self.describe = describe  # the suite's logs, for a failure message

    def query(self, statement, **params):
        with self.engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(text(statement), params)]

    def image_rows(self, user_ids=None):
        if user_ids is None:
            return self.query("SELECT * FROM images")
        return self.query("SELECT * FROM images WHERE user_id::text = ANY(:ids)", ids=[str(u) for u in user_ids])

    def image_row(self, image_id):
        rows = self.query("SELECT * FROM images WHERE id = :id", id=str(image_id))
        return rows[0] if rows else None

    def unpublished(self):
        return {
            table: self.query(f"SELECT event_type, attempts, created_at FROM {table} WHERE published_at IS NULL")
            for table in ("upload_outbox", "user_outbox")
        }

    def stored_files(self):
        """Every stored name under originals/ and outputs/, partial writes as `partial:<name>`."""
        return {*self.store.names(), *(f"partial:{name}" for name in self.store.partials())}

    def busy_queues(self):
        """Queues of the private node holding messages (ready or unacknowledged). RPC reply queues
        are left out: a reply can outlive a killed caller in its queue (nameko lets such a queue
        expire after 5 minutes); it is an answer nobody waits for, not work left undone."""
        return {
            name: counts for name, counts in self.rabbit.queues().items()
            if any(counts) and not name.startswith("rpc.reply-")
        }

    def dead_letter_summary(self):
        try:
            letters = self.dead_letters()
        except Exception as exc:  # noqa: BLE001 - a summary for a failure message
            return f"dead letters unavailable: {exc}"
        return "dead letters: " + json.dumps(
            [{"queue": l["queue"], "error": l["error"], "image_id": (l["payload"] or {}).get("image_id")}
             for l in letters], indent=1)[:3000]

    def dead_letters(self):
        return deadletters.peek({"AMQP_URI": self.amqp_uri})

    def wait_until_final(self, image_id, timeout=60):
        def final():
            row = self.image_row(image_id)
            return row if row is not None and row["status"] in FINAL_STATUSES else None

        return wait_for(final, timeout, lambda: f"image {image_id} not final: {self.image_row(image_id)}\n{self.describe()}",
                        interval=0.2)

    def wait_processing(self, image_id, attempt, timeout=60):
        """Waits until process_service has claimed the image for the `attempt`-th time (its
        pipeline is then running); returns the row."""

        def claimed():
            row = self.image_row(image_id)
            if row is None:
                return None
            assert row["status"] not in FINAL_STATUSES, f"the image finished before it could be killed: {row}"
            return row if row["status"] == "processing" and row["processing_attempts"] >= attempt else None

        return wait_for(claimed, timeout, lambda: f"image not processing (attempt {attempt}): "
                        f"{self.image_row(image_id)}\n{self.dead_letter_summary()}\n{self.describe()}", interval=0.05)
