"""One image through its operations: one decode, the steps in order, one encode.

Plain synchronous, CPU-bound code without global state: the service runs it in a native thread
(Pillow releases the GIL while it decodes, resamples and encodes). Every failure is a
`PipelineError` with a stable code of the contract; no exception of Pillow's escapes.

What the output is:
- The first frame (GIF, APNG, animated WebP, MPO) or first page (TIFF) of the input, upright for its
  EXIF orientation, in a working mode (imaging/modes.py), then each operation in order
  (imaging/transforms/).
- The format is that of the last `convert`, else the input's (an MPO stays a JPEG), encoded once
  (imaging/encoding.py): no metadata but a fitting ICC profile, written atomically. "auto" writes
  the output in several formats (imaging/negotiation.py).
- An upload's variants (contract "Variants") share that one decode: each runs its operations on a
  copy of the upright original and is encoded on its own; the first that fails fails them all.
  When each starts by shrinking, they also share one resize to the largest size any of them
  needs, and finish from that smaller image. They run side by side, one native thread per core.
"""
import contextlib
import functools
import math
import os
import time
from dataclasses import replace

from PIL import Image

from imaging import decoding
from imaging.encoding import encode
from imaging.failures import ImageFailure, PipelineError
from imaging.formats import AUTO, FORMAT_NAMES, FORMATS
from imaging.modes import to_working_mode
from imaging.negotiation import encode_auto
from imaging.transforms import TRANSFORMS, Context, OperationError
from imaging.transforms.resize import RESIZE_REDUCING_GAP
from imaging.validation import validate_operations
from shared import errors
from shared.threads import in_native_threads, usable_cores

__all__ = ["PipelineError", "process_image", "process_variants", "written_files"]


def process_image(src_path, operations, dst_path_stem, max_pixels, timings=None):
    """Processes `src_path` with `operations` (as `validate_operations` returns them); returns the
    output's `{"path", "width", "height", "format", "mime_type", "size_bytes"}`.

    `timings`, when given, is a list that receives `(step, output format, start ns, end ns)` per
    step. This runs in a native thread: it records plain data only, and the caller turns it into
    spans and metrics back in its greenlet (the tracing and metrics libraries take locks that
    eventlet has patched, which must not be contended from a native thread)."""
    variant = {"name": None, "operations": operations}
    return process_variants(src_path, [variant], lambda name: dst_path_stem, max_pixels, timings)[0]


def process_variants(src_path, variants, dst_path_stem_of, max_pixels, timings=None):
    """Processes `src_path` once for all `variants` (`[{"name", "operations"}]`, validated) and
    returns one result per variant, in their order, each as process_image's with the variant's
    `name`; `dst_path_stem_of(name)` is where a variant is written. The first variant that fails
    raises its PipelineError with `variant` set, after removing what the others wrote."""
    timings = timings if timings is not None else []
    variants = [{**variant, "operations": _validated(variant["operations"], variant["name"])} for variant in variants]
    with _opened(src_path, max_pixels) as source:
        formats = [_output_format(source, variant["operations"]) for variant in variants]
        with _timed(timings, "decode", formats[0]):
            upright, all_operations = _decode_upright(source, [variant["operations"] for variant in variants])
        icc_profile = source.info.get("icc_profile") or None
    upright, icc_profile = to_working_mode(upright, icc_profile)
    if len(variants) > 1:
        upright, all_operations = _shared_first_resize(upright, all_operations, _timed(timings, "shared_resize", formats[0]))

    def make(variant, operations, output_format):
        with _failing_as(variant["name"]):
            image = upright.copy() if len(variants) > 1 else upright  # the steps may work in place
            context = _context(output_format, image)
            for step in operations:
                with _timed(timings, step["type"], output_format):
                    image = _apply(image, step, context, max_pixels)
            encoder = encode_auto if output_format is AUTO else functools.partial(encode, output_format=output_format)
            with _timed(timings, "encode", output_format):
                result = encoder(image, quality=_quality(operations), icc_profile=icc_profile,
                                 dst_path_stem=dst_path_stem_of(variant["name"]))
            return {"name": variant["name"], **result}

    jobs = [functools.partial(make, *job) for job in zip(variants, all_operations, formats)]
    outcomes = in_native_threads(jobs, workers=min(len(jobs), usable_cores()))
    failures = [error for _, error in outcomes if error is not None]
    if failures:
        for path in (path for result, _ in outcomes if result is not None for path in written_files(result)):
            with contextlib.suppress(OSError):  # all or nothing: a failed upload keeps no output
                os.unlink(path)
        raise failures[0]  # the first variant in request order that failed
    return [result for result, _ in outcomes]


def written_files(result):
    """Every file of one variant's result: its one output, or each format of an "auto" one."""
    return [each["path"] for each in result["formats"]] if "formats" in result else [result["path"]]


@contextlib.contextmanager
def _failing_as(variant):
    try:
        yield
    except PipelineError as exc:
        exc.variant = exc.variant or variant
        raise


@contextlib.contextmanager
def _timed(timings, step_name, output_format):
    started = time.time_ns()
    try:
        yield
    finally:
        timings.append((step_name, output_format.name, started, time.time_ns()))


def _validated(operations, variant=None):
    # Validated at upload already; checked again (it is cheap and idempotent) because this worker
    # trusts no message blindly: a malformed one fails the image instead of raising KeyError.
    try:
        limit = len(operations) if isinstance(operations, list) else 0  # the limit was the upload's to check
        return validate_operations(operations, max_operations=limit)
    except errors.InvalidOperations as exc:
        raise PipelineError(ImageFailure.INVALID_OPERATIONS, exc.message, variant=variant) from exc


def _output_format(source, operations):
    converts = [step["format"] for step in operations if step["type"] == "convert"]
    name = converts[-1] if converts else FORMAT_NAMES[source.format]
    return AUTO if name == AUTO.name else FORMATS[name]


def _context(output_format, image):
    if output_format is AUTO:
        # What a step may make transparent (rotate's corners) stays opaque unless the original had
        # transparency already: a rotated photo's fallback stays a JPEG, not a large PNG.
        return Context(output_format=replace(AUTO, supports_alpha=image.mode in ("LA", "RGBA")))
    return Context(output_format=output_format)


def _quality(operations):
    qualities = [step["quality"] for step in operations if step["type"] == "compress"]
    return qualities[-1] if qualities else None


# -- decoding -------------------------------------------------------------------------------------


@contextlib.contextmanager
def _decode_errors_failing_the_image():
    try:
        yield
    except errors.TooLarge as exc:
        raise PipelineError(ImageFailure.TOO_LARGE, exc.message) from exc
    except errors.UnsupportedMediaType as exc:
        raise PipelineError(ImageFailure.DECODE_ERROR, f"The original cannot be decoded ({exc.details.get('reason')})") from exc


@contextlib.contextmanager
def _opened(src_path, max_pixels):
    with _decode_errors_failing_the_image(), decoding.open_image(src_path, max_pixels) as source:
        yield source


def _decode_upright(source, all_operations):
    """The decoded first frame, upright, and each variant's operations left to apply."""
    if FORMAT_NAMES[source.format] == "jpeg":
        orientation = decoding.exif_orientation(source)  # a JPEG's EXIF is read at open: nothing decodes here
        all_operations = _shrink_in_decoder(source, all_operations, orientation)
        _decode(source)
    else:
        _decode(source)
        orientation = decoding.exif_orientation(source)  # after decoding: see decoding.exif_orientation
    return decoding.upright(source, orientation), all_operations


def _decode(source):
    with _decode_errors_failing_the_image():
        decoding.decode(source)


def _shrink_in_decoder(source, all_operations, orientation):
    """When every variant's first step can start from a smaller image (a shrinking resize), lets
    libjpeg decode at 1/2, 1/4 or 1/8 scale (DCT scaling, nearly free), at the smallest scale still
    large enough for the largest of them. Their first steps then resize to absolute sizes, so a
    variant that needed less still gets exactly its size."""
    plans = [_shrink_plan(source, operations, orientation) for operations in all_operations]
    if any(plan is None for plan in plans):
        return all_operations
    needed = max(plan[0][0] for plan in plans), max(plan[0][1] for plan in plans)
    if decoding.swaps_axes(orientation):
        needed = needed[1], needed[0]
    try:
        source.draft(None, needed)
    except Exception:  # noqa: BLE001 - a shortcut only: without it the full-size decode still works
        return all_operations
    return [[first_step, *operations[1:]] for (_, first_step), operations in zip(plans, all_operations)]


def _shrink_plan(source, operations, orientation):
    return _shrink_plan_for(decoding.oriented_size(source.size, orientation), operations)


def _shared_first_resize(upright, all_operations, timed):
    """When every variant's first step is a shrinking resize: one resize of the upright image to
    the smallest size from which each of them still gets its exact result, and each variant's
    first step pinned to its planned size (as for a JPEG decoded smaller, see _shrink_in_decoder).
    The variants then resample from that image instead of the original each: for a photo's usual
    set (thumbnail, preview, a large and a small web size) about half the resampling work.
    Skipped when the shared image would keep more than half the pixels: it would save little."""
    plans = [_shrink_plan_for(upright.size, operations) for operations in all_operations]
    if any(plan is None for plan in plans):
        return upright, all_operations
    width, height = upright.size
    needed_width, needed_height = max(plan[0][0] for plan in plans), max(plan[0][1] for plan in plans)
    scale = max(needed_width / width, needed_height / height)
    if scale * scale > 0.5:
        return upright, all_operations
    size = min(width, math.ceil(width * scale)), min(height, math.ceil(height * scale))
    with timed:
        shared = upright.resize(size, Image.Resampling.LANCZOS, reducing_gap=RESIZE_REDUCING_GAP)
    return shared, [[first_step, *operations[1:]] for (_, first_step), operations in zip(plans, all_operations)]


def _shrink_plan_for(size, operations):
    first = TRANSFORMS[operations[0]["type"]] if operations else None
    if first is None or first.shrink_on_load is None:
        return None
    return first.shrink_on_load(size, operations[0])


# -- the steps ------------------------------------------------------------------------------------


def _apply(image, step, context, max_pixels):
    transform = TRANSFORMS[step["type"]]
    try:
        width, height = transform.output_size(image.size, step)
    except OperationError as exc:
        raise PipelineError(exc.code, exc.message) from exc
    if width * height > max_pixels:
        raise PipelineError(
            ImageFailure.TOO_LARGE, f"{step['type']} would make a {width}x{height} image, over the limit of {max_pixels} pixels"
        )
    try:
        return transform.apply(image, step, context)
    except OperationError as exc:
        raise PipelineError(exc.code, exc.message) from exc
    except MemoryError as exc:
        raise PipelineError(ImageFailure.TOO_LARGE, f"Not enough memory for {step['type']}") from exc
    except Exception as exc:  # noqa: BLE001 - Pillow's errors must not escape
        raise PipelineError(ImageFailure.PROCESSING_ERROR, f"{step['type']} failed: {type(exc).__name__}") from exc
