"""One image through its operations: one decode, the steps in order, one encode.

Plain synchronous, CPU-bound code without global state: the service runs it in a native thread
(Pillow releases the GIL while it decodes, resamples and encodes). Every failure is a
`PipelineError` with a stable code of the contract; no exception of Pillow's escapes.

What the output is:
- The first frame (GIF, APNG, animated WebP, MPO) or first page (TIFF) of the input, upright for its
  EXIF orientation, then each operation in order.
- Working modes are L, LA, RGB and RGBA: palettes are expanded (their transparency becomes alpha),
  16-bit and 32-bit samples are scaled to 8 bits (16-bit by value / 257, floats in 0..1 by x 255,
  anything else stretched from its minimum to its maximum), CMYK and CIELAB become sRGB (through the
  embedded ICC profile when there is one).
- The format is that of the last `convert`, else the input's (an MPO stays a JPEG). Alpha is kept
  where the format has it and flattened on white otherwise (JPEG, BMP).
- No EXIF, GPS, XMP, comments or text chunks. The ICC profile is kept when it still describes the
  pixels (same colour space; GIF and BMP carry none).
- Written to `<dst_path_stem>.<ext>` atomically: a temporary file in the same folder, then renamed.
  Pillow encodes, but for the default PNG output, which libpng writes faster (process_service/png.py).
"""
import contextlib
import errno
import io
import math
import os
import time
import zlib
from contextlib import contextmanager

from PIL import Image, ImageCms, ImageFile

from process_service.png import fast_png
from shared import errors, filters, imaging, partial_files  # noqa: F401 - filters: OpenCV loaded at start, not in a job
from shared.failures import ImageFailure
from shared.operations import OPERATIONS, Context, OperationError, resize_geometry, validate_operations

DEFAULT_QUALITY = {"jpeg": 85, "webp": 80, "avif": 60}
WORKING_MODES = ("L", "LA", "RGB", "RGBA")
_ICC_COLOR_SPACES = {"L": b"GRAY", "LA": b"GRAY", "RGB": b"RGB ", "RGBA": b"RGB "}


class PipelineError(Exception):
    """The image cannot be processed; `code` is an ImageFailure (shared/failures.py)."""

    def __init__(self, code, message):
        code = ImageFailure(code)  # a code outside the contract's vocabulary is a bug: ValueError
        super().__init__(code, message)
        self.code = code
        self.message = message

    def __str__(self):
        return f"{self.code}: {self.message}"


def process_image(src_path, operations, dst_path_stem, max_pixels, timings=None):
    """Processes `src_path` with `operations` (as `validate_operations` returns them); returns the
    output's `{"path", "width", "height", "format", "mime_type", "size_bytes"}`.

    `timings`, when given, is a list that receives `(step, output format, start ns, end ns)` per
    step. This runs in a native thread: it records plain data only, and the caller turns it into
    spans and metrics back in its greenlet (the tracing and metrics libraries take locks that
    eventlet has patched, which must not be contended from a native thread)."""
    timings = timings if timings is not None else []
    operations = _validated(operations)
    with _opened(src_path, max_pixels) as source:
        output_format = _output_format(source, operations)
        with _timed(timings, "decode", output_format):
            image, operations = _decode_upright(source, operations)
        icc_profile = source.info.get("icc_profile") or None
    image, icc_profile = _to_working_mode(image, icc_profile)
    context = Context(output_format=output_format)
    for step in operations:
        with _timed(timings, step["type"], output_format):
            image = _apply(image, step, context, max_pixels)
    with _timed(timings, "encode", output_format):
        return _encode(image, output_format, _quality(operations), icc_profile, dst_path_stem)


@contextmanager
def _timed(timings, step_name, output_format):
    started = time.time_ns()
    try:
        yield
    finally:
        timings.append((step_name, output_format.name, started, time.time_ns()))


def _validated(operations):
    # Validated at upload already; checked again (it is cheap and idempotent) because this worker
    # trusts no message blindly: a malformed one fails the image instead of raising KeyError.
    try:
        limit = len(operations) if isinstance(operations, list) else 0  # the limit was the upload's to check
        return validate_operations(operations, max_operations=limit)
    except errors.InvalidOperations as exc:
        raise PipelineError(ImageFailure.INVALID_OPERATIONS, exc.message) from exc


# -- decoding -------------------------------------------------------------------------------------


@contextlib.contextmanager
def _opened(src_path, max_pixels):
    try:
        with imaging.open_image(src_path, max_pixels) as source:
            yield source
    except errors.TooLarge as exc:
        raise PipelineError(ImageFailure.TOO_LARGE, exc.message) from exc
    except errors.UnsupportedMediaType as exc:
        raise PipelineError(ImageFailure.DECODE_ERROR, f"The original cannot be decoded ({exc.details.get('reason')})") from exc


def _output_format(source, operations):
    converts = [step["format"] for step in operations if step["type"] == "convert"]
    return imaging.FORMATS[converts[-1] if converts else imaging.FORMAT_NAMES[source.format]]


def _quality(operations):
    qualities = [step["quality"] for step in operations if step["type"] == "compress"]
    return qualities[-1] if qualities else None


def _decode_upright(source, operations):
    """The decoded first frame, upright, and the operations left to apply."""
    if imaging.FORMAT_NAMES[source.format] == "jpeg":
        orientation = imaging.exif_orientation(source)  # a JPEG's EXIF is read at open: nothing decodes here
        operations = _downscale_in_decoder(source, operations, orientation)
        _decode(source)
    else:
        _decode(source)
        orientation = imaging.exif_orientation(source)  # after decoding: see imaging.exif_orientation
    return imaging.upright(source, orientation), operations


def _decode(source):
    try:
        imaging.decode(source)
    except errors.TooLarge as exc:
        raise PipelineError(ImageFailure.TOO_LARGE, exc.message) from exc
    except errors.UnsupportedMediaType as exc:
        raise PipelineError(ImageFailure.DECODE_ERROR, f"The original cannot be decoded ({exc.details.get('reason')})") from exc


def _downscale_in_decoder(source, operations, orientation):
    """When the first step shrinks a JPEG, lets libjpeg decode at 1/2, 1/4 or 1/8 scale (DCT scaling,
    nearly free), at the smallest scale still at least as large as the resize needs; the resize then
    finishes with Lanczos. The resize is pinned to the output size planned from the full-resolution
    dimensions, so the result has exactly the size it would have had without this shortcut."""
    if not operations or operations[0]["type"] != "resize":
        return operations
    first = operations[0]
    full_size = imaging.oriented_size(source.size, orientation)
    output_size, box = resize_geometry(full_size, first)
    needed = output_size if box is None else _cover_scaled_size(full_size, output_size, box)
    if needed[0] >= full_size[0] or needed[1] >= full_size[1]:
        return operations
    if imaging.swaps_axes(orientation):
        needed = needed[1], needed[0]
    try:
        source.draft(None, needed)
    except Exception:  # noqa: BLE001 - a shortcut only: without it the full-size decode still works
        return operations
    if box is not None:
        return operations  # cover's output is exactly width x height whatever the decoded size
    pinned = {"type": "resize", "width": output_size[0], "height": output_size[1], "fit": "fill"}
    return [pinned, *operations[1:]]


def _cover_scaled_size(full_size, output_size, box):
    """The size the whole image would be scaled to so that `box` becomes `output_size`."""
    scale = output_size[0] / (box[2] - box[0])
    return math.ceil(full_size[0] * scale), math.ceil(full_size[1] * scale)


def _to_working_mode(image, icc_profile):
    """The image in L, LA, RGB or RGBA, and the ICC profile that still describes it."""
    mode = image.mode
    if mode in WORKING_MODES and "transparency" not in image.info:
        return image, icc_profile
    if mode.startswith("I") or mode == "F":
        return _to_8_bits(image), icc_profile
    if mode in ("CMYK", "LAB"):
        return _to_srgb(image, icc_profile), None
    has_alpha = image.has_transparency_data
    if mode in ("1", "L", "LA", "La"):
        return image.convert("LA" if has_alpha else "L"), icc_profile
    return image.convert("RGBA" if has_alpha else "RGB"), icc_profile


def _to_8_bits(image):
    """16-bit (I;16*), 32-bit integer (I) or float (F) samples as 8-bit L (LA with a tRNS colour)."""
    alpha = image.convert("LA").getchannel("A") if "transparency" in image.info else None
    if image.mode.startswith("I;16"):
        grey = image.point(lambda value: value / 257).convert("L")  # within 0..255 now: nothing clips
    else:
        low, high = image.getextrema()
        if image.mode == "F" and 0 <= low and high <= 1:
            scale, offset = 255.0, 0.0
        elif image.mode == "I" and 0 <= low and high <= 65535:
            scale, offset = 1 / 257, 0.0
        else:
            scale = 255.0 / (high - low) if high > low else 0.0
            offset = -low * scale
        grey = image.point(lambda value: value * scale + offset).convert("L")
    if alpha is not None:
        grey.putalpha(alpha)
    return grey


def _to_srgb(image, icc_profile):
    """CMYK or CIELAB pixels as sRGB, through the embedded profile (or the CIELAB one) when possible;
    Pillow's plain conversion otherwise."""
    try:
        if icc_profile:
            source_profile = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
        elif image.mode == "LAB":
            source_profile = ImageCms.createProfile("LAB")
        else:
            return image.convert("RGB")
        transform = ImageCms.buildTransform(source_profile, ImageCms.createProfile("sRGB"), image.mode, "RGB")
        return ImageCms.applyTransform(image, transform)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return image.convert("RGB")


# -- the steps ------------------------------------------------------------------------------------


def _apply(image, step, context, max_pixels):
    operation = OPERATIONS[step["type"]]
    try:
        width, height = operation.output_size(image.size, step)
    except OperationError as exc:
        raise PipelineError(exc.code, exc.message) from exc
    if width * height > max_pixels:
        raise PipelineError(
            ImageFailure.TOO_LARGE, f"{step['type']} would make a {width}x{height} image, over the limit of {max_pixels} pixels"
        )
    try:
        return operation.apply(image, step, context)
    except OperationError as exc:
        raise PipelineError(exc.code, exc.message) from exc
    except MemoryError as exc:
        raise PipelineError(ImageFailure.TOO_LARGE, f"Not enough memory for {step['type']}") from exc
    except Exception as exc:  # noqa: BLE001 - Pillow's errors must not escape
        raise PipelineError(ImageFailure.PROCESSING_ERROR, f"{step['type']} failed: {type(exc).__name__}") from exc


# -- encoding -------------------------------------------------------------------------------------


def _encode(image, output_format, quality, icc_profile, dst_path_stem):
    image = _without_metadata(_for_format(image, output_format))
    icc_profile = _matching_icc(icc_profile, image.mode, output_format)
    options = _save_options(output_format, quality, icc_profile)
    path = f"{dst_path_stem}.{output_format.extension}"
    try:
        encoded = fast_png(image, icc_profile) if output_format.name == "png" and quality is None else None
        _save_atomically(image, path, output_format.pillow, options, encoded)
    except FileNotFoundError as exc:
        # Our half-written file was removed: this job's claim ran out and upload_service cleared
        # what it took for a dead worker's leftovers. Not the image's fault: the retry finds it
        # taken over (or finished) and stands down.
        raise errors.ServiceUnavailable("The result was removed while it was written") from exc
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            # Not the image's fault: retried later (see shared.delivery), not failed for good.
            raise errors.ServiceUnavailable("No space left to write the result") from exc
        raise PipelineError(ImageFailure.ENCODE_ERROR, f"Cannot write {output_format.name}: {type(exc).__name__}") from exc
    except Exception as exc:  # noqa: BLE001 - Pillow's encoders raise OSError, ValueError, KeyError...
        raise PipelineError(ImageFailure.ENCODE_ERROR, f"Cannot write {output_format.name}: {type(exc).__name__}: {exc}") from exc
    return {
        "path": path,
        "width": image.width,
        "height": image.height,
        "format": output_format.name,
        "mime_type": output_format.mime_type,
        "size_bytes": os.path.getsize(path),
    }


def _for_format(image, output_format):
    """The image in a mode the format can store."""
    if image.mode in ("LA", "RGBA") and not output_format.supports_alpha:
        return _flattened_on_white(image)
    if output_format.name in ("webp", "avif") and image.mode in ("L", "LA"):
        return image.convert("RGB" if image.mode == "L" else "RGBA")
    if output_format.name == "gif" and image.mode == "LA":
        return image.convert("RGBA")  # Pillow's GIF encoder would drop LA's alpha
    return image


def _flattened_on_white(image):
    flat = Image.new(image.mode[:-1], image.size, "white")
    flat.paste(image.convert(flat.mode), mask=image.getchannel("A"))
    return flat


def _without_metadata(image):
    """A plain image without `info`: Pillow's encoders copy some metadata from the image itself
    (JPEG and GIF comments, a TIFF's XMP and IPTC tags, PNG's transparency, WebP's background)."""
    if isinstance(image, ImageFile.ImageFile):  # no step made a new image
        image = image.copy()
    image.info = {}
    return image


def _matching_icc(icc_profile, mode, output_format):
    """The profile if the format can carry it and it describes this mode's colour space (a greyscale
    result must not claim an RGB profile)."""
    if not icc_profile or output_format.name in ("gif", "bmp"):
        return None
    return icc_profile if icc_profile[16:20] == _ICC_COLOR_SPACES.get(mode) else None


def _save_options(output_format, quality, icc_profile):
    name = output_format.name
    options = {"icc_profile": icc_profile} if icc_profile else {}
    if name in DEFAULT_QUALITY:
        options["quality"] = quality or DEFAULT_QUALITY[name]
    if name == "jpeg" and quality is not None:
        options["optimize"] = True  # the caller asked for size: optimised Huffman tables
    if name == "png":
        if quality is None:
            # zlib's run-length strategy: about 3x faster than level 6 and, on photos and filtered
            # images, files as small (measured by bench.processing).
            options["compress_type"] = zlib.Z_RLE
        else:
            options["compress_level"] = 9  # the caller asked for size
            options["optimize"] = True
    if name == "tiff":
        options["compression"] = "tiff_adobe_deflate"
    return options


def _save_atomically(image, path, pillow_format, options, encoded=None):
    """Writes `encoded` (bytes made by another encoder) or else Pillow's encoding of `image`."""
    temporary = partial_files.partial_path(path)
    try:
        with open(temporary, "xb") as fp:
            if encoded is not None:
                fp.write(encoded)
            else:
                image.save(fp, format=pillow_format, **options)
        os.chmod(temporary, 0o644)  # whatever the umask: the web server serves it
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
