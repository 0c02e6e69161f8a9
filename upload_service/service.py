"""upload_service: takes uploads with their operations, keeps their records, answers status
(long-polled), serves downloads through nginx, and learns results from process_service."""
import contextlib
import datetime as dt
import json
import logging
import os
import time
import uuid
from contextlib import contextmanager

from nameko.timer import timer
from sqlalchemy import func, select, tuple_
from werkzeug.wrappers import Response

from imaging import decoding
from imaging.failures import ImageFailure
from imaging.formats import MIME_TYPES
from imaging.validation import primary_variant, validate_variants
from shared import errors, logs, owner
from shared.auth import Auth
from shared.delivery import Delivery, retrying_event_handler, retry_when_unavailable
from shared.db import Database
from shared.rpc import rpc
from shared.transient import DATABASE_UNAVAILABLE_ERRORS
from shared.health import check_amqp
from shared.http import http
from shared.service import Service
from shared.metrics import IMAGES_FINISHED, WORK_WAITING
from shared.multipart import parse_with_file_at
from shared.outbox import Outbox
from shared.settings import setting
from shared.storage import original_name
from shared.storage.dependency import ImageStore
from shared.threads import run_in_thread
from shared.tracing import TracedEventDispatcher
from shared.validation import load
from upload_service import claims
from upload_service.dependencies import ImageStatus, Limits, MediaUrls, Presets
from upload_service.models import COMPLETED, FAILED, FINAL_STATUSES, PROCESSING, QUEUED, Base, Image, OutboxEvent
from upload_service.schemas import (
    ListQuerySchema,
    decode_cursor,
    encode_cursor,
    image_to_dict,
    output_files,
    parse_image_id,
    primary_output,
    stored_outputs,
    variant_outputs,
    status_query_schema,
)
from upload_service.status import GONE
from shared.filenames import content_disposition, download_name, safe_filename
from upload_service.sweeper import Sweeper

log = logging.getLogger(__name__)

OUTBOX = Outbox(OutboxEvent)
# Uploads publish their own event at once; results' announcements (emails) go out with this timer,
# which also covers a crash or a broker outage between a commit and its publish.
RELAY_INTERVAL_SECONDS = 1
# Housekeeping: files a crash left behind are removed once older than an hour (no upload takes
# that long); published outbox rows are kept a week for inspection.
SWEEP_INTERVAL_SECONDS = 600
ORPHAN_MIN_AGE_SECONDS = 3600
OUTBOX_RETENTION = dt.timedelta(days=7)
MAX_OPERATIONS_FIELD_BYTES = 64 * 1024
# Room for the multipart framing and the operations field around the file itself.
MULTIPART_OVERHEAD_BYTES = 1024 * 1024


def utcnow():
    return dt.datetime.now(dt.timezone.utc)


@contextmanager
def database_unavailable_as_503():
    """For RPCs process_service makes: a database outage reaches it as its own ServiceUnavailable,
    which it retries later, rather than as an error that dead-letters its message."""
    try:
        yield
    except DATABASE_UNAVAILABLE_ERRORS as exc:
        raise errors.ServiceUnavailable("The image database is unavailable") from exc


class UploadService(Service):
    name = "upload_service"

    # Rows keep their values after a commit: the status cache is written from them without a re-read.
    db = Database(Base, "UPLOAD_DATABASE_URL", session_options={"expire_on_commit": False})
    auth = Auth()
    storage = ImageStore()
    status = ImageStatus()
    limits = Limits()
    presets = Presets()
    media = MediaUrls()
    dispatch = TracedEventDispatcher()
    delivery = Delivery()

    # -- the public API ------------------------------------------------------------------------

    @http("POST", "/api/images/upload")
    def upload(self, request):
        user_id, contact = self.auth.user(request)
        logs.bind(user_id=user_id)
        request.max_content_length = self.limits.max_upload_bytes + MULTIPART_OVERHEAD_BYTES
        image_id = uuid.uuid4()
        original_path = original_name(image_id)
        # Validated from a local copy before anything reaches the store: a refused file costs it
        # nothing. The parser writes the file there itself (shared/multipart.py): no second copy.
        with self.storage.staged(original_path) as staged:
            upload = self._single_file(request, staged.path)
            variants = validate_variants(
                form_json(request, "variants"), form_json(request, "operations"), self.presets,
                self.limits.max_operations,
            )
            operations = primary_variant(variants)["operations"]
            logs.bind(image_id=image_id)
            size = os.path.getsize(staged.path)
            info = self._inspect(staged.path)
            staged.commit(content_type=MIME_TYPES[info["format"]])
        try:
            image = Image(
                id=image_id,
                user_id=user_id,
                status=QUEUED,
                original_filename=safe_filename(upload.filename),
                operations=operations,
                variants=variants,
                original_path=original_path,
                width=info["width"],
                height=info["height"],
                format=info["format"],
                size_bytes=size,
            )
            session = self.db.session
            session.add(image)
            session.flush()
            # The answer is what was accepted: read before the event can make the image move on.
            body = {"image": image_to_dict(image)}
            uploaded = OUTBOX.add(session, "image_uploaded", {
                "image_id": str(image_id),
                "user_id": str(user_id),
                "original_path": original_path,
                "format": info["format"],
                "width": info["width"],
                "height": info["height"],
                "operations": operations,
                "variants": variants,
                **({"owner": contact} if contact else {}),
            })
            session.commit()
        except BaseException:
            # Failed: nothing stays behind, neither the bytes nor a row (should the store be down
            # now, the sweeper removes them: they have no row).
            self.db.session.rollback()
            with contextlib.suppress(errors.ServiceUnavailable):
                self.storage.remove(original_path)
            raise
        self.status.cache.set(image, announce=False)
        self._relay_outbox(only=[uploaded.id])
        log.info("image accepted", extra={"format": info["format"], "operations": len(operations), "variants": len(variants)})
        return 202, body

    @http("GET", "/api/images/status/<image_id>")
    def image_status(self, request, image_id):
        user_id = self.auth.user_id(request)
        wait = load(status_query_schema(self.limits.max_wait_seconds), request.args)["wait"]
        image_id = parse_image_id(image_id)
        deadline = time.monotonic() + wait
        # Listening before the read: a result landing between the two would ring for no one, and
        # the poll would sleep its whole wait.
        with self.status.notifier.listening(str(image_id)) as wait_for_change:
            current = self._current_status(image_id, user_id)
            while current["status"] not in FINAL_STATUSES:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                wait_for_change(remaining)
                current = self._current_status(image_id, user_id)
        return 200, current

    def _current_status(self, image_id, user_id):
        """The status answer from Redis when it has it, else from PostgreSQL (and put back in
        Redis). No database connection is kept: a thousand waiters must not drain the pool."""
        image_id = parse_image_id(image_id)
        cached = self.status.cache.get(image_id)
        if cached is GONE:
            raise errors.NotFound("No such image")
        if cached is not None:
            owner, body = cached
            if owner != str(user_id):
                raise errors.NotFound("No such image")
            logs.bind(image_id=image_id)
            return body
        body = self.status.cache.write_back(self._owned_image(image_id, user_id))
        self.db.session.close()
        return body

    @http("GET", "/api/images/<image_id>")
    def get_image(self, request, image_id):
        user_id = self.auth.user_id(request)
        return 200, {"image": image_to_dict(self._owned_image(image_id, user_id), self.media)}

    @http("GET", "/api/images")
    def list_images(self, request):
        user_id = self.auth.user_id(request)
        query = load(ListQuerySchema(), request.args)
        statement = (
            select(Image)
            .where(Image.user_id == user_id)
            .order_by(Image.created_at.desc(), Image.id.desc())
            .limit(query["limit"] + 1)
        )
        if query["cursor"]:
            created_at, last_id = decode_cursor(query["cursor"])
            statement = statement.where(tuple_(Image.created_at, Image.id) < tuple_(created_at, last_id))
        images = self.db.session.scalars(statement).all()
        page, more = images[: query["limit"]], len(images) > query["limit"]
        return 200, {
            "images": [image_to_dict(image, self.media) for image in page],
            "next_cursor": encode_cursor(page[-1]) if more else None,
        }

    @http("GET", "/api/presets")
    def list_presets(self, request):
        """The named pipelines a variant may use (contract "Variants"), as validated at start."""
        self.auth.user_id(request)
        return 200, {"presets": self.presets}

    @http("GET", "/api/images/<image_id>/download")
    def download(self, request, image_id):
        """Authorizes, then lets nginx stream the output from the store itself (X-Accel-Redirect to
        its internal /_storage/ or /_objects/ location): no image byte passes through here."""
        user_id = self.auth.user_id(request)
        image = self._owned_image(image_id, user_id)
        output = requested_output(image, request.args.get("variant"))
        filename = download_name(image.original_filename, output["format"])
        return Response(
            status=200,
            headers={
                "X-Accel-Redirect": self.storage.gateway_location(output["path"]),
                "Content-Type": MIME_TYPES[output["format"]],
                "Content-Disposition": content_disposition(filename),
                "Cache-Control": "private, max-age=3600",
            },
        )

    @http("GET", "/api/images/<image_id>/url")
    def media_url(self, request, image_id):
        """A fresh signed URL of the output (contract "Delivery"), for `ttl` seconds."""
        user_id = self.auth.user_id(request)
        ttl = media_ttl_from(request.args.get("ttl"), self.media.ttl)
        image = self._owned_image(image_id, user_id)
        output = requested_output(image, request.args.get("variant"))
        url, expires_at = self.media.variant_url(image, output, ttl)
        return 200, {"url": url, "expires_at": expires_at.isoformat().replace("+00:00", "Z")}

    @http("DELETE", "/api/images/<image_id>")
    def delete_image(self, request, image_id):
        user_id = self.auth.user_id(request)
        image = self._owned_image(image_id, user_id)
        files = (image.original_path, *stored_outputs(image))
        self.db.session.delete(image)
        self.db.session.commit()
        self.status.cache.forget(image.id)
        try:
            self.storage.remove(*files)
        except errors.ServiceUnavailable as exc:
            # The image is gone for its owner; its bytes, without a row now, go with the next sweep.
            log.warning("image deleted, its bytes left to the sweeper: %s", exc)
        return 204, None

    # -- results from process_service -----------------------------------------------------------

    @rpc
    def start_processing(self, image_id, alongside_others=False):
        """process_service claims an image before it processes it (see upload_service/claims.py).
        A duplicate message for a finished or deleted image is skipped; one whose worker is still
        on it waits; an image whose workers died MAX_PROCESSING_ATTEMPTS times fails for good; a
        suspect asked for `alongside_others` is to be run alone."""
        with database_unavailable_as_503():
            image = self._locked_image(image_id)
            if image is None or image.status in FINAL_STATUSES:
                self.db.session.rollback()
                return {"proceed": False, "reason": "deleted" if image is None else image.status}
            now = utcnow()
            decision = claims.claim(image, now, self.limits.processing_lease_seconds,
                                    self.limits.max_processing_attempts, alongside_others)
            if decision.found_crash:
                # Its writer is dead and nobody holds the image: what it half-wrote goes now (the
                # next holder is told to proceed only after this returns).
                self.storage.remove_partials(image.id)
            if decision.proceed:
                image.status = PROCESSING
                image.updated_at = now
                self.db.session.commit()
                self.status.cache.set(image)
            elif decision.reason == ImageFailure.PROCESSING_CRASHED:
                self._finish_locked(image, FAILED, {
                    "error_code": ImageFailure.PROCESSING_CRASHED, "error_message": claims.crash_message(image)})
            elif decision.reason == "run_alone" or decision.overdue:
                # Keeps the crash it may have found (the claim is free), or the last chance it gave.
                self.db.session.commit()
            else:
                self.db.session.rollback()  # someone else is on it: nothing changed; the row lock ends
            return decision.as_reply()

    @rpc
    def renew_processing(self, image_id, claim):
        """process_service, while it works: "still on it". False once the claim is not its own."""
        with database_unavailable_as_503():
            image = self._locked_image(image_id)
            renewed = image is not None and claims.renew(image, claim, utcnow(), self.limits.processing_lease_seconds)
            self.db.session.commit()
            return renewed

    @rpc
    def release_processing(self, image_id, claim):
        """process_service gives an image back without a result (its message is retried later)."""
        with database_unavailable_as_503():
            image = self._locked_image(image_id)
            released = image is not None and claims.release(image, claim)
            self.db.session.commit()
            return released

    def _locked_image(self, image_id):
        image_id = parse_image_id(image_id)
        logs.bind(image_id=image_id)
        return self.db.session.scalars(select(Image).where(Image.id == image_id).with_for_update()).first()

    @retrying_event_handler("process_service", "image_processed")
    def on_processed(self, payload):
        """`output` is the primary variant; `variants` (absent from older workers) every variant's."""
        output = payload["output"]
        outputs = payload.get("variants")
        files = sorted(set(output_files(output)).union(*(output_files(each) for each in (outputs or {}).values())))
        with retry_when_unavailable(self.delivery, payload):
            self._finish(payload["image_id"], COMPLETED, {
                "output_path": output["path"],
                "output_width": output["width"],
                "output_height": output["height"],
                "output_format": output["format"],
                "output_size_bytes": output["size_bytes"],
                "variant_outputs": outputs,
            }, orphan_files=files, contact=owner.contact(payload.get("owner")))

    @retrying_event_handler("process_service", "image_processing_failed")
    def on_processing_failed(self, payload):
        error = payload["error"]
        with retry_when_unavailable(self.delivery, payload):
            self._finish(payload["image_id"], FAILED, {
                "error_code": error["code"],
                "error_message": error["message"][:500],
                "error_details": error.get("details") or None,
            }, contact=owner.contact(payload.get("owner")))

    def _finish(self, image_id, status, values, orphan_files=(), contact=None):
        """Moves an image to a final status exactly once; a redelivered result changes nothing,
        and a final status never goes back."""
        with self.limits.result_slots:
            image = self._locked_image(image_id)
            if image is None:
                # Deleted while it was processed: the result has no owner any more.
                self.storage.remove(*orphan_files)
                return
            if image.status in FINAL_STATUSES:
                kept = stored_outputs(image) if image.status == COMPLETED else []
                orphans = [name for name in orphan_files if name not in kept]
                if orphans:
                    # A late result (a worker that lost its claim, or outran its time) for an
                    # image that ended otherwise: its files are no one's.
                    self.storage.remove(*orphans)
                self.db.session.rollback()
                return
            self._finish_locked(image, status, values, contact)

    def _finish_locked(self, image, status, values, contact=None):
        """Final status and the owner's email announcement, in one commit. `contact`: the owner's
        address when the result brought it (shared/owner.py), so the email needs no lookup."""
        for key, value in values.items():
            setattr(image, key, value)
        image.status = status
        image.updated_at = utcnow()
        image.claim_token = image.claim_expires_at = image.claim_overdue_since = None
        body = image_to_dict(image)
        event = {
            "image_id": str(image.id),
            "user_id": str(image.user_id),
            "original_filename": image.original_filename,
        }
        if contact:
            event["owner"] = contact
        if status == COMPLETED:
            # The email's link is signed for EMAIL_LINK_TTL from now: the mail goes out within a
            # second, or once the broker is back.
            email_url, _ = self.media.output_url(image, self.media.email_ttl)
            event["output"] = {**body["output"], "email_url": email_url, "email_url_ttl": self.media.email_ttl}
            event["variants"] = list(body["variants"])
        else:
            event["error"] = body["error"]
        # The owner's email is announced by the relay timer (within RELAY_INTERVAL_SECONDS): under a
        # stream of results, one batch publish per second costs far less than one per result.
        OUTBOX.add(self.db.session, "image_completed" if status == COMPLETED else "image_failed", event)
        self.db.session.commit()
        IMAGES_FINISHED.labels(status).inc()
        self.status.cache.set(image)  # rings the long-polls' doorbell
        log.info("image %s", status)

    # -- operations -----------------------------------------------------------------------------

    @timer(interval=RELAY_INTERVAL_SECONDS)
    def relay_outbox(self):
        self._relay_outbox()

    @timer(interval=SWEEP_INTERVAL_SECONDS)
    def sweep_storage(self):
        """Removes what crashes left on disk, and outbox rows published long ago."""
        removed = Sweeper(self.storage, ORPHAN_MIN_AGE_SECONDS).sweep(self._statuses_of_images)
        if removed:
            log.warning("swept %d orphaned object(s)", len(removed), extra={"objects": [o.name for o in removed][:50]})
        OUTBOX.delete_published_before(self.db.session, utcnow() - OUTBOX_RETENTION)
        self.db.session.commit()

    def _refresh_gauges(self):
        pending = self.db.session.scalar(
            select(func.count()).select_from(OutboxEvent).where(OutboxEvent.published_at.is_(None))
        )
        WORK_WAITING.labels("upload_outbox").set(pending)

    # -- helpers --------------------------------------------------------------------------------

    def _relay_outbox(self, only=None):
        OUTBOX.relay(lambda: self.db.get_session(close_on_exit=True), self.dispatch, only=only)

    def _statuses_of_images(self, image_ids):
        found = {}
        for start in range(0, len(image_ids), 500):
            chunk = image_ids[start:start + 500]
            rows = self.db.session.execute(select(Image.id, Image.status).where(Image.id.in_(chunk)))
            found.update((image_id, status) for image_id, status in rows)
        return found

    def _checks(self):
        return {
            "database": lambda: self.db.session.execute(select(1)),
            "redis": self.status.client.ping,
            "amqp": check_amqp(setting(self.config, "AMQP_URI")),
            "storage": self.storage.check,
        }

    def _single_file(self, request, path):
        """The one file of the field `image`, written to `path` while the form is parsed."""
        files = parse_with_file_at(request, "image", path, self.limits.max_upload_bytes)
        if len(files) != 1:
            raise errors.ValidationError(
                "Send exactly one file in the multipart field 'image'",
                {"image": ["Exactly one file is required." if files else "Missing file."]},
            )
        return files[0]

    def _inspect(self, path):
        """Decodes the upload once, in a native thread, within the process's pixel budget."""
        width, height = decoding.header_size(path)
        with self.limits.decode_budget.reserve(min(width * height, self.limits.max_image_pixels)):
            return run_in_thread(decoding.inspect_image, path, self.limits.max_image_pixels)

    def _owned_image(self, image_id, user_id):
        """The image if it is this user's; any other image is indistinguishable from none."""
        image = self.db.session.get(Image, parse_image_id(image_id))
        if image is None or str(image.user_id) != str(user_id):
            raise errors.NotFound("No such image")
        logs.bind(image_id=image.id)
        return image

def operations_from(request):
    """The `operations` field decoded; absent or empty: no operations."""
    operations = form_json(request, "operations")
    return [] if operations is None else operations


def form_json(request, field):
    """A JSON form field (`operations`, `variants`), as text or as a file part
    (`curl -F operations=@ops.json`), decoded. Absent or empty: None. Sent twice: refused, as two
    images are."""
    texts = request.form.getlist(field)
    for part in request.files.getlist(field):
        raw = part.stream.read(MAX_OPERATIONS_FIELD_BYTES + 1)
        if len(raw) > MAX_OPERATIONS_FIELD_BYTES:
            raise _invalid_field(field, f"'{field}' is too large", "too large")
        try:
            texts.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise _invalid_field(field, f"'{field}' is not UTF-8 text", "not UTF-8")
    if len(texts) > 1:
        raise _invalid_field(field, f"Send '{field}' once", "sent more than once")
    if not texts or not texts[0].strip():
        return None
    try:
        return json.loads(texts[0])
    except (ValueError, RecursionError):
        raise _invalid_field(field, f"'{field}' is not valid JSON", "invalid JSON")


def _invalid_field(field, message, reason):
    details = {"reason": reason}
    if field == "variants":
        details.update(variant=None, field=field)
    return errors.InvalidOperations(message, details)


def requested_output(image, variant):
    """The output ({"path", "format", ...}) a download or a signed URL asks for: the variant named, or
    the primary output without a name. 404 for a variant the image does not have, 409 before the
    image is completed."""
    names = [each["name"] for each in image.variants] if image.variants else ["default"]
    if variant is not None and variant not in names:
        raise errors.NotFound("No such variant", {"variant": variant})
    if image.status != COMPLETED:
        raise errors.NotReady(details={"status": image.status})
    return primary_output(image) if variant is None else variant_outputs(image)[variant]


MAX_MEDIA_TTL_SECONDS = 7 * 24 * 3600


def media_ttl_from(raw, default):
    """`ttl` of GET /api/images/<id>/url: 1..604800 seconds, MEDIA_URL_TTL when absent."""
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_MEDIA_TTL_SECONDS:
        reason = f"must be a whole number of seconds from 1 to {MAX_MEDIA_TTL_SECONDS}"
        raise errors.ValidationError(f"'ttl' {reason}", {"ttl": [reason]})
    return int(raw)
