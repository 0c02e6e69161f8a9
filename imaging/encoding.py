"""One encode at the end of the pipeline: the format's mode, no metadata, the ICC profile that still
fits, the quality asked for, written atomically.

- Alpha is kept where the format has it and flattened on white otherwise (JPEG, BMP).
- No EXIF, GPS, XMP, comments or text chunks. The ICC profile is kept when it still describes the
  pixels (same colour space; GIF and BMP carry none).
- Written to `<dst_path_stem>.<ext>` atomically: a temporary file in the same folder, then renamed.
  Pillow encodes, but for the default PNG output, which libpng writes faster (imaging/png.py).
"""
import errno
import os
import zlib

from PIL import Image, ImageFile

from imaging.failures import ImageFailure, PipelineError
from imaging.png import fast_png
from shared import errors
from shared.storage import partial_files

DEFAULT_QUALITY = {"jpeg": 85, "webp": 80, "avif": 60}
_ICC_COLOR_SPACES = {"L": b"GRAY", "LA": b"GRAY", "RGB": b"RGB ", "RGBA": b"RGB "}


def encode(image, output_format, quality, icc_profile, dst_path_stem, speed=None):
    """`speed`: the AVIF encoder's (0 slowest and smallest .. 10), else Pillow's default (6)."""
    image = _without_metadata(_for_format(image, output_format))
    icc_profile = _matching_icc(icc_profile, image.mode, output_format)
    options = _save_options(output_format, quality, icc_profile)
    if speed is not None and output_format.name == "avif":
        options["speed"] = speed
    path = f"{dst_path_stem}.{output_format.extension}"
    try:
        encoded = fast_png(image, icc_profile) if output_format.name == "png" and quality is None else None
        _save_atomically(image, path, output_format.pillow, options, encoded)
    except FileNotFoundError as exc:
        # Our half-written file was removed with its run's folder (the run outlived its time, or
        # the spool cleaner took it for a dead process's). Not the image's fault: the retry finds
        # it taken over (or finished) and stands down.
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
