"""The end-of-test check of every fault test: what a fault may not change.

`verify(suite, accounts, uploads)`: no service died; every error answer was the JSON envelope and
every attempt got an answer; one row per accepted upload and none for a refused one; every stored
image reached the final state a fault-free run gives (same status, error code, output format, size
and bytes as the pipeline produces on its own) and the API says so; nothing waiting (outbox rows,
queued or unacknowledged messages, dead letters); exactly one email each (by Message-ID); files and
rows agree. Each promise is one function below.
"""
import json
import time
import uuid
from pathlib import Path

from eventlet import tpool

from imaging.pipeline import PipelineError, process_image
from tests.faults.records import DEAD_LETTER_QUEUE, FINAL_STATUSES, sha256
from tests.support.processes import wait_for


class References:
    """What a fault-free run makes of an upload: the pipeline itself, run here on the same bytes."""

    def __init__(self, folder):
        self.folder = folder
        self._known = {}

    def expected(self, data, operations):
        key = (sha256(data), json.dumps(operations, sort_keys=True))
        if key not in self._known:
            self.folder.mkdir(parents=True, exist_ok=True)
            source = self.folder / f"{key[0]}.src"
            source.write_bytes(data)
            stem = self.folder / uuid.uuid4().hex
            try:
                result = tpool.execute(process_image, str(source), operations, str(stem), 50_000_000)
            except PipelineError as exc:
                self._known[key] = {"status": "failed", "error_code": exc.code}
            else:
                output = Path(result["path"])
                self._known[key] = {
                    "status": "completed",
                    "output_format": result["format"],
                    "output_width": result["width"],
                    "output_height": result["height"],
                    "output_sha256": sha256(output.read_bytes()),
                }
                output.unlink()
        return self._known[key]


def actual(records, row):
    """The same facts of what the suite made of it."""
    if row["status"] == "completed":
        name = row["output_path"]
        return {
            "status": "completed",
            "output_format": row["output_format"],
            "output_width": row["output_width"],
            "output_height": row["output_height"],
            "output_sha256": sha256(records.store.read(name)) if records.store.exists(name) else f"missing {name}",
        }
    return {"status": row["status"], "error_code": row["error_code"]}


def verify(suite, accounts, uploads, timeout=60, expect=None, ambiguous_ok=True):
    """Checks everything the fault tests promise; returns {image_id: row}.

    accounts: the accounts the test made (their images and emails are checked).
    uploads: every Upload the test attempted. 202 ones must have a row; refused ones (4xx, 507)
      must have none; one that got a 5xx or no answer while a service was killed may or may
      not have been stored (the client cannot know), but if it was, it is held to the same
      promises as an accepted one (`ambiguous_ok=False` forbids that).
    expect: {filename: expected state} overriding the fault-free result (e.g. processing_crashed).
    """
    suite.assert_alive("the fault")
    by_name = {upload.filename: upload for upload in uploads}
    assert len(by_name) == len(uploads), "upload file names must be unique within a test"
    user_ids = [account.user["id"] for account in accounts]
    records = suite.records

    every_answer_was_json(uploads)
    rows_match_uploads(records, user_ids, by_name, ambiguous_ok)
    rows = all_final(suite, user_ids, timeout)
    results_are_fault_free(suite, rows, by_name, expect or {})
    the_api_agrees(accounts, rows)
    nothing_waiting(suite)
    one_email_each(suite, accounts, rows)
    files_and_rows_agree(records)
    return {str(row["id"]): row for row in rows.values()}


def every_answer_was_json(uploads):
    problems = [f"{u.filename}: {u.json_problem}" for u in uploads if u.json_problem]
    assert not problems, "error answers that are not JSON:\n" + "\n".join(problems)
    unanswered = [f"{u.filename}: {u.error}" for u in uploads if u.error]
    assert not unanswered, "uploads without an HTTP answer:\n" + "\n".join(unanswered)


def _rows_by_name(records, user_ids):
    return {row["original_filename"]: row for row in records.image_rows(user_ids)}


def rows_match_uploads(records, user_ids, by_name, ambiguous_ok):
    """One row per accepted upload, none for a refused one."""
    rows = _rows_by_name(records, user_ids)
    strays = sorted(set(rows) - set(by_name))
    assert not strays, f"image rows nobody uploaded: {strays}"
    for upload in by_name.values():
        row = rows.get(upload.filename)
        if upload.accepted:
            assert row is not None, f"{upload.filename} was answered 202 but has no row"
            assert str(row["id"]) == upload.image_id
        elif row is not None:
            assert upload.status_code is None or upload.status_code >= 500, \
                f"{upload.filename} was refused ({upload.status_code} {upload.error_code}) yet stored"
            assert ambiguous_ok, f"{upload.filename} got {upload.status_code} yet was stored"


def all_final(suite, user_ids, timeout):
    """Each stored image reaches its final state. One whose event was dead-lettered never will:
    that fails at once rather than after the timeout."""
    records = suite.records
    next_letter_check = [time.monotonic() + 2]

    def final():
        current = _rows_by_name(records, user_ids)
        unfinished = {str(row["id"]) for row in current.values() if row["status"] not in FINAL_STATUSES}
        if not unfinished:
            return current
        if time.monotonic() >= next_letter_check[0]:
            next_letter_check[0] = time.monotonic() + 2
            stuck = {(letter["payload"] or {}).get("image_id") for letter in records.dead_letters()} & unfinished
            assert not stuck, "images that will never finish, their event dead-lettered: %s\n%s\n%s" % (
                sorted(name for name, row in current.items() if str(row["id"]) in stuck),
                records.dead_letter_summary(), suite.log())
        return None

    return wait_for(final, timeout, lambda: (
        "images not final after %ss (status, processing attempts, crashes): %s\n%s\n%s" % (timeout, {
            name: (row["status"], row["processing_attempts"], row["processing_crashes"])
            for name, row in _rows_by_name(records, user_ids).items()
            if row["status"] not in FINAL_STATUSES
        }, records.dead_letter_summary(), suite.log())), interval=0.25)


def results_are_fault_free(suite, rows, by_name, expect):
    for name, row in rows.items():
        upload = by_name[name]
        wanted = expect.get(name) or suite.references.expected(upload.data, upload.operations)
        got = actual(suite.records, row)
        assert {key: got.get(key) for key in wanted} == wanted, (
            f"{name}: {got} instead of {wanted} (error message: {row['error_message']!r}, "
            f"processing started {row['processing_attempts']} time(s), {row['processing_crashes']} crash(es))")


def the_api_agrees(accounts, rows):
    accounts_by_user = {account.user["id"]: account for account in accounts}
    for row in rows.values():
        response = accounts_by_user[str(row["user_id"])].images.status(row["id"], wait=0)
        assert response.status_code == 200, response.text
        assert response.json()["status"] == row["status"]


def nothing_waiting(suite):
    """Events published, queues drained, no dead letters."""
    records = suite.records
    wait_for(lambda: not any(records.unpublished().values()), 20,
             lambda: f"unpublished outbox rows: {records.unpublished()}")

    def drained():
        busy = records.busy_queues()
        # Nothing consumes the dead-letter queue: waiting would not empty it.
        assert DEAD_LETTER_QUEUE not in busy, records.dead_letter_summary()
        return not busy

    wait_for(drained, 60, lambda: f"messages left in queues: {records.busy_queues()}\n{suite.log()}", interval=0.5)
    assert not records.dead_letters(), records.dead_letter_summary()


def one_email_each(suite, accounts, rows):
    """Exactly one email per image (by its Message-ID), the kind its final state calls for, and
    exactly one welcome per account."""
    user_ids = [account.user["id"] for account in accounts]
    wanted = {f"welcome.{user_id}": 1 for user_id in user_ids}
    for row in rows.values():
        kind = "image-ready" if row["status"] == "completed" else "image-failed"
        wanted[f"{kind}.{row['id']}"] = 1

    def mail_counts():
        counts = {}
        for message in suite.mailbox.messages():
            local = str(message.get("Message-ID", "")).strip("<> ").partition("@")[0]
            counts[local] = counts.get(local, 0) + 1
        return counts

    def all_mail_arrived():
        counts = mail_counts()
        return counts if all(counts.get(key, 0) >= 1 for key in wanted) else None

    counts = wait_for(all_mail_arrived, 30, lambda: "emails missing: %s\n%s" % (
        sorted(key for key in wanted if key not in mail_counts()), suite.log()), interval=0.3)
    ours = {key: count for key, count in counts.items()
            if key.partition(".")[2] in {str(row["id"]) for row in rows.values()} | set(user_ids)}
    assert ours == wanted, f"emails (Message-ID: count) {ours} instead of exactly one each {wanted}"
    duplicates = {key: count for key, count in counts.items() if count > 1}
    assert not duplicates, f"emails sent more than once: {duplicates}"


def files_and_rows_agree(records):
    """Across the whole suite: no orphan, nothing missing, no temporary file, nothing unfinished."""
    rows = records.image_rows()
    wanted = {row["original_path"] for row in rows}
    wanted |= {row["output_path"] for row in rows if row["status"] == "completed"}
    stored = records.stored_files()
    assert stored == wanted, (
        f"files without a row (or temporary): {sorted(stored - wanted)}; rows without their file: "
        f"{sorted(wanted - stored)}"
    )
    unfinished = [(str(row["id"]), row["status"]) for row in rows if row["status"] not in FINAL_STATUSES]
    assert not unfinished, f"images left unfinished: {unfinished}"
