"""`convert` to "auto" (contract "Delivery", format negotiation): one output written in every format
a browser may prefer, for the gateway (gateway/media.js) to answer each request with the smallest
that its `Accept` header allows.

The formats: AVIF where the installed Pillow writes it, WebP, and a fallback every client decodes:
PNG when the image has transparency (some pixel not fully opaque), else JPEG. The result is the
fallback's (its `format` is what the contract's `format` names) plus `formats`, one entry per file.

AVIF's encoder speed is chosen for what the three encodes cost together against one WebP encode of
the same image (the target: `auto` <= 2.5x WebP). Measured with libavif 1.4.2 / aom 3.14.1 on an
800 and a 1600 px photo (bench.variants prints the result on every run): at 800 px, AVIF alone
costs 9.1x a WebP encode at speed 6 (Pillow's default), 2.1-2.4x at 8 (`auto` 3.1-3.4x), 0.77-0.94x
at 9 for a file 3-4% larger than speed 8's; 10 is no faster than 9. So 9.
"""
import contextlib
import os

from imaging.encoding import encode
from imaging.formats import FORMATS

AVIF_SPEED = 9


def fallback_format(image):
    """PNG if any pixel is not fully opaque, else JPEG (an alpha channel that is all opaque is not
    transparency: a photo saved as RGBA PNG still gets a JPEG)."""
    if image.mode in ("LA", "RGBA") and image.getchannel("A").getextrema()[0] < 255:
        return FORMATS["png"]
    return FORMATS["jpeg"]


def encode_auto(image, quality, icc_profile, dst_path_stem):
    """Writes `<dst_path_stem>.<ext>` for each format (imaging/encoding.py's `encode` for each, all
    or none) and returns the fallback's result with `formats`: `[{"format", "mime_type",
    "size_bytes", "path"}]`, AVIF and WebP first, the fallback last."""
    candidates = [FORMATS[name] for name in ("avif", "webp") if name in FORMATS] + [fallback_format(image)]
    written = []
    try:
        for output_format in candidates:
            speed = AVIF_SPEED if output_format.name == "avif" else None
            written.append(encode(image, output_format, quality, icc_profile, dst_path_stem, speed=speed))
    except BaseException:
        for result in written:
            with contextlib.suppress(OSError):
                os.unlink(result["path"])
        raise
    fallback = written[-1]
    formats = [{key: result[key] for key in ("format", "mime_type", "size_bytes", "path")} for result in written]
    return {**fallback, "formats": formats}
