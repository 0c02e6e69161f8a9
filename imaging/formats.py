"""The image formats the suite reads and writes: the contract's names, Pillow's, MIME types, extensions."""
from dataclasses import dataclass

from PIL import features


@dataclass(frozen=True)
class ImageFormat:
    name: str  # the contract's name: "jpeg", "png", ...
    pillow: str  # Pillow's format name, for Image.save
    mime_type: str
    extension: str
    supports_alpha: bool  # whether an output in this format may be transparent


AVIF_AVAILABLE = features.check("avif")

FORMATS = {
    image_format.name: image_format
    for image_format in (
        ImageFormat("jpeg", "JPEG", "image/jpeg", "jpg", supports_alpha=False),
        ImageFormat("png", "PNG", "image/png", "png", supports_alpha=True),
        ImageFormat("webp", "WEBP", "image/webp", "webp", supports_alpha=True),
        ImageFormat("gif", "GIF", "image/gif", "gif", supports_alpha=True),
        ImageFormat("tiff", "TIFF", "image/tiff", "tiff", supports_alpha=True),
        # 32-bit BMP with alpha is poorly supported by readers: a BMP output is flattened on white.
        ImageFormat("bmp", "BMP", "image/bmp", "bmp", supports_alpha=False),
        *([ImageFormat("avif", "AVIF", "image/avif", "avif", supports_alpha=True)] if AVIF_AVAILABLE else []),
    )
}
MIME_TYPES = {name: image_format.mime_type for name, image_format in FORMATS.items()}
EXTENSIONS = {name: image_format.extension for name, image_format in FORMATS.items()}

# `convert` to "auto" (contract "Delivery", format negotiation): one output in several formats,
# the gateway answering each request with the smallest its Accept header allows. Not a format of
# its own: transforms see it as one that keeps alpha only where the original had it
# (imaging/pipeline.py), and imaging/negotiation.py writes the formats.
AUTO = ImageFormat("auto", "", "", "", supports_alpha=True)

# The formats the `convert` operation may produce; BMP is only ever kept for a BMP input.
CONVERT_FORMATS = tuple(name for name in ("jpeg", "png", "webp", "avif", "tiff", "gif") if name in FORMATS) + ("auto",)

# The only decoders `Image.open` may try, most common first. Anything else (EPS, which would run
# Ghostscript, PSD, DDS, ...) is never even identified. MPO (multi-picture JPEG) is not listed because
# Pillow has no MPO opener: its JPEG opener returns an MpoImageFile (format "MPO") by itself, and
# naming "MPO" here makes Image.open raise KeyError.
ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "TIFF", "BMP") + (("AVIF",) if AVIF_AVAILABLE else ())

# Pillow's name of an opened image's format -> the contract's name. An MPO is a JPEG to us.
FORMAT_NAMES = {
    "JPEG": "jpeg",
    "MPO": "jpeg",
    "PNG": "png",
    "WEBP": "webp",
    "GIF": "gif",
    "TIFF": "tiff",
    "BMP": "bmp",
    **({"AVIF": "avif"} if AVIF_AVAILABLE else {}),
}
