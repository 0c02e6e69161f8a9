"""Safe decoding of untrusted image files: the format allow-list, the pixel limit, EXIF orientation.

Upload time (`inspect_image`) refuses anything that is not a fully decodable image of an accepted
format; the processing pipeline opens and decodes through the same functions, so both apply the same
rules. Every function here is plain synchronous code without global state: callers run it in a native
thread.

Pillow's own decompression-bomb guard (`Image.MAX_IMAGE_PIXELS`) is left at Pillow's default and is
not changed here: it is process-wide state. It is a second line of defence behind our own check of
the header dimensions, which runs right after `Image.open` and before any pixel is decoded: its
`DecompressionBombError` becomes `TooLarge`, and its `DecompressionBombWarning` (only for images
above its limit, ~89 Mpx) is always followed by our `TooLarge` while `max_pixels` is below that.
A deployment that configures `MAX_IMAGE_PIXELS` above ~179 Mpx must also raise
`PIL.Image.MAX_IMAGE_PIXELS` once at start-up, or Pillow refuses such images first (as `TooLarge`).
"""
import contextlib

from PIL import Image, UnidentifiedImageError

from imaging.formats import ALLOWED_FORMATS, FORMAT_NAMES, MIME_TYPES
from shared import errors

ORIENTATION_TAG = 0x0112
# EXIF orientation -> the transposition that makes the image upright.
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SWAPS_AXES = {5, 6, 7, 8}

# A JPEG decoded at 1/8 scale still has all of its entropy-coded data read, so a truncated or
# corrupt file is still refused, at a fraction of the time and memory. In grey ("L": a colour
# JPEG's luma only) libjpeg still reads every component's data, which is interleaved in the scan,
# but skips the chroma's IDCT, upsampling and colour conversion: 33 ms instead of 35-40 ms for a
# 4000x3000 photo (bench/README.md "Suite CPU per image"). Only the answer is kept, not the pixels.
_VALIDATION_DRAFT_MODE = "L"
_VALIDATION_DRAFT_SIZE = (1, 1)


def inspect_image(path, max_pixels):
    """What the upload is, once it is proven to be a whole image of an accepted format.

    Returns `{"width", "height", "format", "mime_type"}`, `format` being the contract's name (an MPO
    reads as "jpeg"). `width` and `height` are those of the image as it is meant to be seen, AFTER its
    EXIF orientation: a 1200x1800 photo with Orientation 6 reports 1800x1200, the size every output
    of the pipeline starts from (the pipeline auto-orients first), so clients can plan operations
    such as crops from these numbers. The pixel limit applies to the header's dimensions before any
    decoding (rotation does not change the pixel count). The image is then fully decoded once (a
    JPEG at 1/8 scale): a truncated or corrupt file is refused even if its header is fine.

    Raises `errors.TooLarge` (more pixels than `max_pixels`, or a decompression bomb) or
    `errors.UnsupportedMediaType` (anything that is not such an image, whatever exception the
    decoder raises).
    """
    with open_image(path, max_pixels) as image:
        stored_size = image.size
        image_format = FORMAT_NAMES[image.format]
        if image_format == "jpeg":
            image.draft(_VALIDATION_DRAFT_MODE, _VALIDATION_DRAFT_SIZE)
        decode(image)
        orientation = exif_orientation(image)
    width, height = oriented_size(stored_size, orientation)
    return {"width": width, "height": height, "format": image_format, "mime_type": MIME_TYPES[image_format]}


def header_size(path):
    """The stored (width, height) from the header alone, without decoding any pixels: cheap enough to
    size a memory budget before `inspect_image` runs. Raises like `open_image`."""
    with open_image(path, max_pixels=None) as image:
        return image.size


@contextlib.contextmanager
def open_image(path, max_pixels):
    """Opens `path` with the allow-list and checks its header: nothing is decoded yet.

    Raises `errors.UnsupportedMediaType` for anything unidentified, of another format or without
    pixels; `errors.TooLarge` for more than `max_pixels` pixels (None: no limit of ours) or for what
    Pillow itself calls a decompression bomb. A file-system error (missing file) is not the upload's
    fault and is not translated.
    """
    with open(path, "rb") as fp:
        try:
            image = Image.open(fp, formats=ALLOWED_FORMATS)
        except Image.DecompressionBombError as exc:
            raise errors.TooLarge("The image has too many pixels", {"reason": str(exc)}) from exc
        except Exception as exc:  # noqa: BLE001 - see `decode`: a hostile header raises anything
            raise errors.UnsupportedMediaType(details={"reason": _reason(exc)}) from exc
        _check_header(image, max_pixels)
        yield image


def decode(image):
    """Decodes the (first frame of the) opened image, once. The first error is final: some of
    Pillow's decoders fail on a first `load()` and then return a half-decoded image on a second one.

    Pillow's decoders raise a zoo of exception types on hostile input: OSError (truncated data,
    decoder errors), ValueError, SyntaxError, struct.error, EOFError, IndexError, KeyError,
    TypeError, ZeroDivisionError, MemoryError... Any of them means "not a decodable image".
    `PIL.ImageFile.LOAD_TRUNCATED_IMAGES` must stay False (Pillow's default) for this to refuse truncated files.
    """
    try:
        image.load()
    except Image.DecompressionBombError as exc:
        raise errors.TooLarge("The image has too many pixels", {"reason": str(exc)}) from exc
    except Exception as exc:  # noqa: BLE001
        raise errors.UnsupportedMediaType(details={"reason": _reason(exc)}) from exc


def exif_orientation(image):
    """The image's EXIF orientation, 1..8; 1 when absent or when the EXIF block cannot be parsed (a
    broken EXIF block is metadata we discard anyway, not a reason to fail the image).

    Call it after `decode` for every format but JPEG: PNG's `getexif()` decodes the image to find an
    eXIf chunk placed after the pixels, and a decode error raised there must not pass for broken EXIF.
    """
    try:
        value = image.getexif().get(ORIENTATION_TAG, 1)
    except Exception:  # noqa: BLE001 - any parse error of untrusted metadata
        return 1
    return value if isinstance(value, int) and value in _UPRIGHT else 1


def oriented_size(size, orientation):
    """The (width, height) of an image stored as `size` once turned upright."""
    width, height = size
    return (height, width) if orientation in _SWAPS_AXES else (width, height)


def swaps_axes(orientation):
    return orientation in _SWAPS_AXES


def upright(image, orientation):
    """The image turned upright for its EXIF orientation (lossless); the image itself when already so."""
    method = _UPRIGHT.get(orientation)
    return image if method is None else image.transpose(method)


def _check_header(image, max_pixels):
    width, height = image.size
    if image.format not in FORMAT_NAMES:
        raise errors.UnsupportedMediaType(details={"reason": f"format {image.format} is not accepted"})
    if width <= 0 or height <= 0:
        raise errors.UnsupportedMediaType(details={"reason": "the image has no pixels"})
    if max_pixels is not None and width * height > max_pixels:
        raise errors.TooLarge(
            f"The image has {width * height} pixels; the limit is {max_pixels}",
            {"width": width, "height": height, "max_pixels": max_pixels},
        )


def _reason(exc):
    # The decoder's own words help whoever reads the details; the text of UnidentifiedImageError
    # names the file (a server path), so that one gets ours.
    if isinstance(exc, UnidentifiedImageError):
        return "not an image of an accepted format"
    return f"{type(exc).__name__}: {exc}"[:200]

