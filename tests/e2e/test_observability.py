"""One upload followed through every hop: one trace, correctly parented, and JSON logs that join it."""
import json
import re

import pytest

from tests.conftest import CORPUS_DIR
from tests.support.processes import wait_for
from tests.support.clients import ImagesClient

pytestmark = pytest.mark.e2e

CLIENT_TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
CLIENT_SPAN_ID = "b7ad6b7169203331"
HONCHO_LINE = re.compile(r"^\d\d:\d\d:\d\d (?P<process>[a-z_]+)\.\d+\s+\| (?P<line>.*)$")
SERVICES = {"user_service", "upload_service", "process_service", "notification_service"}
# The owner's address comes with the image's events (shared/owner.py): an upload's trace needs no
# user_service hop any more.
UPLOAD_SERVICES = SERVICES - {"user_service"}


def one(spans, **match):
    found = [span for span in spans if all(span.get(key) == value for key, value in match.items())]
    assert len(found) == 1, f"expected one span {match}, found {[(s['service'], s['name']) for s in found]}"
    return found[0]


def is_descendant(span, ancestor, by_id):
    while span.get("parent_span_id"):
        if span["parent_span_id"] == ancestor["span_id"]:
            return True
        span = by_id.get(span["parent_span_id"], {})
    return False


@pytest.fixture
def traced_upload(suite, new_account):
    """One upload with the client's own traceparent, until its email has been sent."""
    user, token = new_account("Tracy")
    log_offset = len(suite.log())
    images = ImagesClient(suite.url, token)
    images.headers["traceparent"] = f"00-{CLIENT_TRACE_ID}-{CLIENT_SPAN_ID}-01"
    operations = [{"type": "resize", "width": 64}, {"type": "grayscale"}]
    image_id = images.upload(CORPUS_DIR / "good-images" / "hopper.jpg", operations).json()["image"]["id"]
    images.headers.pop("traceparent")
    assert images.wait_until_done(image_id)["status"] == "completed"
    suite.mailbox.wait_for(user["email"], count=2)
    return {"user": user, "token": token, "image_id": image_id, "log_offset": log_offset}


def test_one_trace_holds_every_hop_of_an_upload(suite, traced_upload):
    def complete_trace():
        spans = suite.spans.trace(CLIENT_TRACE_ID)
        names = {(span["service"], span["name"]) for span in spans}
        return spans if ("notification_service", "smtp.send") in names else None

    spans = wait_for(complete_trace, timeout=20, message="the trace did not arrive complete")
    by_id = {span["span_id"]: span for span in spans}

    upload = one(spans, service="upload_service", kind="SERVER", name="POST /api/images/upload")
    assert upload["parent_span_id"] == CLIENT_SPAN_ID, "the client's traceparent is the parent"
    uploaded = one(spans, service="upload_service", kind="PRODUCER", name="upload_service.image_uploaded publish")
    assert uploaded["parent_span_id"] == upload["span_id"]
    consumed = one(spans, service="process_service", kind="CONSUMER", name="upload_service.image_uploaded process")
    assert consumed["parent_span_id"] == uploaded["span_id"]

    for step in ("pipeline.decode", "pipeline.resize", "pipeline.grayscale", "pipeline.encode"):
        assert is_descendant(one(spans, service="process_service", name=step), consumed, by_id), step

    processed = one(spans, service="process_service", kind="PRODUCER", name="process_service.image_processed publish")
    assert is_descendant(processed, consumed, by_id)
    result = one(spans, service="upload_service", kind="CONSUMER", name="process_service.image_processed process")
    assert result["parent_span_id"] == processed["span_id"]
    completed = one(spans, service="upload_service", kind="PRODUCER", name="upload_service.image_completed publish")
    assert is_descendant(completed, result, by_id)
    notified = one(spans, service="notification_service", kind="CONSUMER", name="upload_service.image_completed process")
    assert notified["parent_span_id"] == completed["span_id"]
    assert not [span for span in spans if span["name"] == "user_service.get_user"], "the address came with the event"
    # The RPC hop of the upload's path: process_service claims the image from upload_service.
    claim_calls = [span for span in spans if span["kind"] == "CLIENT" and span["name"] == "upload_service.start_processing"]
    claim_servers = [span for span in spans if span["kind"] == "SERVER" and span["name"] == "upload_service.start_processing"]
    assert claim_calls and all(is_descendant(call, consumed, by_id) for call in claim_calls)
    assert sorted(span["parent_span_id"] for span in claim_servers) == sorted(call["span_id"] for call in claim_calls)
    assert is_descendant(one(spans, service="notification_service", name="smtp.send"), notified, by_id)

    sql = [span for span in spans if span["service"] == "upload_service" and span["kind"] == "CLIENT" and "db.system" in str(span["attributes"])]
    assert sql and all(is_descendant(span, upload, by_id) or is_descendant(span, result, by_id) for span in sql)
    redis_spans = [span for span in spans if span["attributes"].get("db.system") == "redis"]
    assert redis_spans, "Redis calls are traced"
    # user_service is in it only when a token's revocation had to be asked of it (the Redis mirror not loaded).
    assert UPLOAD_SERVICES <= {span["service"] for span in spans} <= SERVICES
    assert all(span["trace_id"] == CLIENT_TRACE_ID for span in spans)


def test_probes_and_housekeeping_make_no_traces(suite, traced_upload):
    names = {span["name"] for span in suite.spans.all()}
    assert not any("healthz" in name or "metrics" in name or "relay_outbox" in name for name in names)


def service_log_lines(suite, offset=0):
    for raw in suite.log()[offset:].splitlines():
        match = HONCHO_LINE.match(raw)
        if match and match["process"] in SERVICES:
            yield match["process"], match["line"]


def test_every_service_log_line_is_json_and_joins_the_trace(suite, traced_upload):
    lines = list(service_log_lines(suite, traced_upload["log_offset"]))
    assert lines
    records = []
    for process, line in lines:
        record = json.loads(line)  # every line is one JSON object
        assert {"timestamp", "level", "service", "message"} <= set(record), line
        assert record["service"] == process
        records.append(record)
    in_trace = [record for record in records if record.get("trace_id") == CLIENT_TRACE_ID]
    assert {record["service"] for record in in_trace} >= {"upload_service", "process_service"}
    for record in in_trace:
        assert record.get("span_id")
    accepted = [record for record in in_trace if record["message"] == "image accepted"]
    assert accepted and accepted[0]["image_id"] == traced_upload["image_id"]
    assert accepted[0]["user_id"] == traced_upload["user"]["id"]


def test_no_secret_is_ever_logged(suite, traced_upload):
    everything = suite.log()
    assert traced_upload["token"] not in everything
    assert "a long enough password" not in everything
    assert "$2b$" not in everything, "no bcrypt hash"
