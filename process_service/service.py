"""process_service: runs each uploaded image's pipeline and reports the result by event.

Stateless: any number of processes (on any host that reaches the same store and broker) share the
work through the broker's queue. Originals are read and outputs written only through the store
(shared/storage): with an object store, a run's bytes are in local files of its own spool, removed
when it ends. Pillow runs in native threads, within a per-process pixel budget,
so the event loop and AMQP heartbeats go on while images are decoded.
"""
import contextlib
import logging
import os

import eventlet
from nameko.extensions import DependencyProvider

from imaging.budget import PixelBudget
from imaging.failures import ImageFailure
from imaging.pipeline import PipelineError, process_variants, written_files
from imaging.validation import primary_variant
from process_service.isolation import Isolation, Suspect
from process_service.lease import HeldClaim
from shared import deadline, logs, owner
from shared.delivery import Delivery, RetryAfter, retrying_event_handler, retry_when_unavailable
from shared.health import check_amqp
from shared.service import Service
from shared.metrics import OPERATION_SECONDS, WORK_WAITING, queue_depth
from shared.settings import setting
from shared.storage import ObjectMissing, output_name
from shared.storage.dependency import ImageStore
from shared.threads import run_in_thread
from shared.tracing import TracedEventDispatcher, TracedRpcProxy, tracer

log = logging.getLogger(__name__)

# nameko's name for the queue of `process` below: evt-<source>-<event>--<service>.<method>
PROCESS_QUEUE = "evt-upload_service-image_uploaded--process_service.process"


class Workbench(DependencyProvider):
    """How many pixels may be in memory at once, how long a pipeline may take, and which jobs run
    alone (process_service/isolation.py)."""

    def setup(self):
        config = self.container.config
        self.max_pixels = setting(config, "MAX_IMAGE_PIXELS")
        self.budget = PixelBudget(setting(config, "PROCESS_BUDGET_PIXELS"))
        self.timeout_seconds = setting(config, "PROCESSING_TIMEOUT_SECONDS")
        self.isolation = Isolation()

    def get_dependency(self, worker_ctx):
        return self


def _remove_late_result(job):
    try:
        result = job.wait()
    except Exception:  # noqa: BLE001 - it failed late: nothing was written
        return
    for path in (path for variant in result for path in written_files(variant)):
        with contextlib.suppress(OSError):
            os.unlink(path)
    log.warning("a pipeline that had timed out ended: its result was removed")


def owner_of(payload):
    """The owner's address from `image_uploaded`, handed back with the result (shared/owner.py)."""
    contact = owner.contact(payload.get("owner"))
    return {"owner": contact} if contact else {}


def failure_event(image_id, code, message, details=None, handed_back=None):
    """`image_processing_failed`'s payload."""
    error = {"code": code, "message": message}
    if details:
        error["details"] = details
    return {"image_id": image_id, "error": error, **(handed_back or {})}


def record_steps(timings):
    """The pipeline's step timings as child spans of the current one, and as duration metrics."""
    for step, output_format, started, ended in timings:
        span = tracer().start_span(
            f"pipeline.{step}", start_time=started, attributes={"image.output_format": output_format}
        )
        span.end(end_time=ended)
        OPERATION_SECONDS.labels(step, output_format).observe((ended - started) / 1e9)


class ProcessService(Service):
    name = "process_service"

    workbench = Workbench()
    storage = ImageStore()
    dispatch = TracedEventDispatcher()
    delivery = Delivery()
    upload_service = TracedRpcProxy("upload_service")

    @retrying_event_handler("upload_service", "image_uploaded")
    def process(self, payload):
        image_id = payload["image_id"]
        logs.bind(image_id=image_id, user_id=payload.get("user_id"))
        def give_up(exc):
            self._report_failure(image_id, ImageFailure.PROCESSING_UNAVAILABLE, "The image could not be processed in time",
                                 handed_back=owner_of(payload))

        with retry_when_unavailable(self.delivery, payload, on_give_up=give_up):
            try:
                self._claim_and_process(payload, alone=False)
            except Suspect:
                # A worker died with this image in hand: it may be the cause, so it runs alone.
                log.warning("image was in hand when a worker died: processing it alone")
                self._claim_and_process(payload, alone=True)

    def _claim_and_process(self, payload, alone):
        image_id = payload["image_id"]
        with self.workbench.isolation.gate(alone=alone):
            claim = self.upload_service.start_processing(image_id, alongside_others=not alone)
            if claim.get("overdue") and self.delivery.last_attempt:
                # Its holder's lease ran out and it has a last chance to renew (upload_service/claims.py).
                # No retry is left to come back after it (a message whose image crashed its workers
                # several times in a row spends two retries per crash): wait for it here, ask again.
                eventlet.sleep(claim["retry_after"])
                claim = self.upload_service.start_processing(image_id, alongside_others=not alone)
            if not claim["proceed"]:
                if claim["reason"] == "run_alone":
                    raise Suspect()  # out of the gate, to come back alone
                self._skip(claim)
                return
            with HeldClaim(self.upload_service, image_id, claim["claim"], claim["lease_seconds"]) as held:
                try:
                    output = self._run_pipeline(payload)
                except PipelineError as exc:
                    log.info("image failed: %s", exc.code, extra={"variant": exc.variant})
                    details = {"variant": exc.variant} if exc.variant else None
                    held.report(self.dispatch, "image_processing_failed",
                                failure_event(image_id, exc.code, exc.message, details, owner_of(payload)))
                    return
                held.report(self.dispatch, "image_processed", {"image_id": image_id, **output, **owner_of(payload)})
            log.info("image processed")

    def _skip(self, claim):
        if claim["reason"] != "in_progress":
            log.info("image skipped: %s", claim["reason"])
            return
        # Another worker holds the image: this message came again while it works (a broker
        # restart) or after it died (its lease runs out). Ask again when the lease would end.
        if self.delivery.last_attempt:
            # Its holder has kept renewing for the whole retry schedule: alive, so it reports.
            log.info("image skipped: another worker is still processing it")
            return
        raise RetryAfter(claim["retry_after"])

    def _run_pipeline(self, payload):
        """Fetches the original (a local file for the run), runs every variant's pipeline from one
        decode into the run's own folder, and stores the outputs, all or none; nothing of the run
        stays on local disk afterwards. Returns the event's `output` (the primary variant) and
        `variants` ({name: output}, in request order)."""
        bench = self.workbench
        image_id = payload["image_id"]
        # Older messages carry only `operations`: the variant `default`.
        variants = payload.get("variants") or [{"name": "default", "operations": payload["operations"]}]
        pixels = min(int(payload.get("width", 0)) * int(payload.get("height", 0)), bench.max_pixels)
        timings = []
        with self._fetched_original(payload["original_path"]) as source, self.storage.spool.folder_for_run() as run:
            with bench.budget.reserve(pixels), tracer().start_as_current_span("pipeline"):
                try:
                    results = self._within_timeout(
                        process_variants, str(source), variants, lambda name: str(run / f"{image_id}.{name}"),
                        bench.max_pixels, timings,
                    )
                finally:
                    record_steps(timings)
            outputs, stored = {}, []
            with tracer().start_as_current_span("store output"):
                try:
                    for result in results:
                        outputs[result["name"]] = self._store_output(image_id, result, stored)
                except BaseException:
                    with contextlib.suppress(Exception):  # else the sweeper's, once the image has failed
                        self.storage.remove(*stored)
                    raise
        return {"output": outputs[primary_variant(variants)["name"]], "variants": outputs}

    def _store_output(self, image_id, result, stored):
        """Stores one variant's file (each of its formats for "auto"), appending each stored name
        to `stored`, and returns its entry of the event's `variants`."""
        def put(written):
            # The same names on a retry: a second run overwrites, it never adds.
            name = output_name(image_id, os.path.basename(written["path"]).rsplit(".", 1)[-1], result["name"])
            self.storage.put_file(written["path"], name, content_type=written["mime_type"])
            stored.append(name)
            return name

        output = {key: result[key] for key in ("width", "height", "format", "size_bytes")}
        if "formats" in result:
            output["formats"] = [{"format": each["format"], "size_bytes": each["size_bytes"], "path": put(each)}
                                 for each in result["formats"]]
            output["path"] = output["formats"][-1]["path"]  # the fallback's, as `format` names it
        else:
            output["path"] = put(result)
        return output

    @contextlib.contextmanager
    def _fetched_original(self, name):
        try:
            with self.storage.fetched(name) as path:
                yield path
        except ObjectMissing:
            raise PipelineError(ImageFailure.SOURCE_MISSING, "The original file is no longer stored") from None

    def _within_timeout(self, *args):
        """`process_variants(*args)` in a native thread. A native thread cannot be stopped: past
        PROCESSING_TIMEOUT_SECONDS the job stops waiting for it, so that a pipeline that hangs (a
        deadlock in a library) fails its image instead of holding it in `processing`, its lease
        renewed, for ever; whatever it writes when it ends is removed then."""
        seconds = self.workbench.timeout_seconds

        def abandon(job):
            log.error("pipeline still running after %g s: the image fails", seconds)
            job.link(_remove_late_result)

        too_long = PipelineError(ImageFailure.PROCESSING_TIMEOUT, f"Processing took longer than {seconds:g} s")
        return deadline.wait_within(eventlet.spawn(run_in_thread, *args), seconds, too_long, on_late=abandon)

    def _report_failure(self, image_id, code, message, details=None, handed_back=None):
        self.dispatch("image_processing_failed", failure_event(image_id, code, message, details, handed_back))

    def _refresh_gauges(self):
        try:
            WORK_WAITING.labels(PROCESS_QUEUE).set(queue_depth(setting(self.config, "AMQP_URI"), PROCESS_QUEUE))
        except Exception as exc:  # a scrape still answers; the gauge keeps its last value
            log.warning("queue depth unavailable: %s", exc)

    def _checks(self):
        return {"amqp": check_amqp(setting(self.config, "AMQP_URI")), "storage": self.storage.check}
