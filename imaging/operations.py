"""The image operations of the public contract, each declared once: what it is called, what its
parameters are (type, range, choices, default) and what it does, as data.

Everything that needs to know an operation reads this catalogue: validation at upload
(imaging/validation.py), the OpenAPI schema (imaging/schema.py) and the pipeline, which applies each
step through the transform of the same name (imaging/transforms/). Nothing here touches pixels, so
upload_service validates operations without loading any image library.
"""
from dataclasses import dataclass
from typing import Optional

from imaging.formats import CONVERT_FORMATS

MAX_OPERATIONS = 20
# Outputs of one upload (contract "Variants", "Limits").
MAX_VARIANTS = 10
DEFAULT_VARIANT = "default"

INTEGER, NUMBER, BOOLEAN, STRING = "integer", "number", "boolean", "string"


class _Required:
    def __repr__(self):
        return "REQUIRED"


REQUIRED = _Required()  # a Param default: the field must be given. `None`: it may be left out.


@dataclass(frozen=True)
class Param:
    name: str
    kind: str  # INTEGER, NUMBER, BOOLEAN or STRING: JSON Schema's names
    minimum: Optional[float] = None
    maximum: Optional[float] = None
    choices: Optional[tuple] = None
    default: object = REQUIRED
    pattern: Optional[str] = None
    min_length: Optional[int] = None
    max_length: Optional[int] = None
    description: str = ""


@dataclass(frozen=True)
class Operation:
    name: str
    params: tuple
    at_least_one_of: tuple = ()  # names of optional params of which one must be given
    description: str = ""

    @property
    def param_names(self):
        return {param.name for param in self.params}


FITS = ("contain", "cover", "fill", "inside")  # sharp's names
FLIP_DIRECTIONS = ("horizontal", "vertical")
POSITIONS = ("top-left", "top-right", "bottom-left", "bottom-right", "center")
COLOR_PATTERN = "^#([0-9a-fA-F]{6}|[0-9a-fA-F]{8})$"

OPERATIONS = {
    operation.name: operation
    for operation in (
        Operation(
            "resize",
            (
                Param("width", INTEGER, 1, 10000, default=None, description="Target width in pixels."),
                Param("height", INTEGER, 1, 10000, default=None, description="Target height in pixels."),
                Param(
                    "fit",
                    STRING,
                    choices=FITS,
                    default="contain",
                    description="contain: keep the aspect ratio, fit inside width x height; cover: fill "
                    "width x height, then centre-crop the excess; fill: stretch to exactly width x height; "
                    "inside: like contain but never enlarge. With one side given the aspect ratio is kept.",
                ),
            ),
            at_least_one_of=("width", "height"),
            description="Resize (Lanczos). At least one of width and height.",
        ),
        Operation(
            "crop",
            (
                Param("left", INTEGER, 0, description="Left edge, in pixels of the image at this step."),
                Param("top", INTEGER, 0, description="Top edge, in pixels of the image at this step."),
                Param("width", INTEGER, 1),
                Param("height", INTEGER, 1),
            ),
            description="Cut out a rectangle. It must lie inside the image at that point of the "
            "pipeline, else the image fails with invalid_crop.",
        ),
        Operation(
            "rotate",
            (
                Param("degrees", NUMBER, description="Clockwise; any finite number. Multiples of 90 are lossless."),
                Param("expand", BOOLEAN, default=True, description="Grow the canvas to hold the whole rotated image."),
                Param(
                    "background",
                    STRING,
                    default=None,
                    pattern=COLOR_PATTERN,
                    description="#rrggbb or #rrggbbaa for the uncovered corners. Default: transparent "
                    "where the output format allows (png, webp, avif, tiff, gif), else white.",
                ),
            ),
            description="Rotate clockwise.",
        ),
        Operation(
            "flip",
            (Param("direction", STRING, choices=FLIP_DIRECTIONS, description="horizontal mirrors left-right."),),
            description="Mirror the image.",
        ),
        Operation("grayscale", (), description="Convert to greyscale (alpha is kept)."),
        Operation(
            "blur",
            (Param("radius", NUMBER, 0.1, 100, description="Gaussian radius in pixels."),),
            description="Gaussian blur.",
        ),
        Operation(
            "sharpen",
            (
                Param("amount", NUMBER, 0, 10, default=1, description="Strength; 1 adds 100% of the detail."),
                Param("radius", NUMBER, 0.1, 100, default=2, description="Radius of the detail, in pixels."),
            ),
            description="Unsharp mask.",
        ),
        Operation(
            "watermark",
            (
                Param("text", STRING, min_length=1, max_length=200),
                Param("position", STRING, choices=POSITIONS, default="bottom-right"),
                Param("opacity", NUMBER, 0, 1, default=0.5),
                Param(
                    "size",
                    NUMBER,
                    0.01,
                    1,
                    default=0.05,
                    description="Height of the text as a fraction of the image's width; the text is "
                    "made smaller if it would not fit inside the image.",
                ),
            ),
            description="Draw white text with a dark outline.",
        ),
        Operation(
            "convert",
            (Param("format", STRING, choices=CONVERT_FORMATS),),
            description="Output format. The last convert wins; without one the output keeps the "
            "input's format.",
        ),
        Operation(
            "compress",
            (
                Param(
                    "quality",
                    INTEGER,
                    1,
                    100,
                    description="Encoder quality for jpeg, webp and avif (defaults 85, 80, 60). For the "
                    "lossless formats (png, tiff, gif) it asks for the smallest (slowest) lossless encoding.",
                ),
            ),
            description="Output quality. The last compress wins.",
        ),
    )
}
