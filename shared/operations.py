"""The image operations of the public contract, each declared once.

A declaration names the operation, its parameters (type, range, choices, default) and the functions
that plan and apply it to a decoded image. Validation at upload (`validate_operations`), application
in the worker (`process_service.pipeline`) and documentation (`operations_json_schema`, for the
OpenAPI file) all read these declarations: adding an operation is one `Operation(...)` below.

Conventions the `apply` functions rely on: the pipeline hands them an upright image in one of the
working modes L, LA, RGB or RGBA, owns it, and may get it back modified in place. `output_size`
tells the pipeline, before anything is allocated, what size `apply` will produce.
"""
import math
import re
from dataclasses import dataclass
from typing import Callable, Optional

from PIL import Image, ImageDraw, ImageFont

from shared import errors, imaging
from shared.failures import ImageFailure

MAX_OPERATIONS = 20

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
class Context:
    """What an operation may need to know beyond its own parameters."""

    output_format: imaging.ImageFormat


class OperationError(Exception):
    """An operation cannot be applied to this image (e.g. a crop outside it); `code` is the contract's."""

    def __init__(self, code, message):
        super().__init__(code, message)
        self.code = code
        self.message = message


def _same_size(size, params):
    return size


@dataclass(frozen=True)
class Operation:
    name: str
    params: tuple
    apply: Callable  # (image, params, context) -> image
    output_size: Callable = _same_size  # (size, params) -> size, before anything is allocated
    at_least_one_of: tuple = ()  # names of optional params of which one must be given
    description: str = ""

    @property
    def param_names(self):
        return {param.name for param in self.params}


# -- resize ---------------------------------------------------------------------------------------

FITS = ("contain", "cover", "fill", "inside")
# Pillow first shrinks by an integer factor (cheap box reduce) while the remaining Lanczos step still
# spans this many source pixels per output pixel: the same result to the eye, several times faster.
RESIZE_REDUCING_GAP = 3.0


def resize_geometry(size, params):
    """(output size, source box or None) of a resize of an image of `size`. The box is the centred
    region that `cover` keeps; only `cover` with both sides crops. With one side given, every fit
    keeps the aspect ratio (`inside` still never enlarges)."""
    width, height = size
    target_width, target_height, fit = params.get("width"), params.get("height"), params["fit"]
    if target_width is None or target_height is None:
        scale = target_width / width if target_width is not None else target_height / height
        return _scaled(size, min(scale, 1.0) if fit == "inside" else scale), None
    if fit == "fill":
        return (target_width, target_height), None
    if fit == "cover":
        scale = max(target_width / width, target_height / height)
        box_width, box_height = target_width / scale, target_height / scale
        left, top = (width - box_width) / 2, (height - box_height) / 2
        return (target_width, target_height), (left, top, left + box_width, top + box_height)
    scale = min(target_width / width, target_height / height)
    return _scaled(size, min(scale, 1.0) if fit == "inside" else scale), None


def _scaled(size, scale):
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def _resize_size(size, params):
    return resize_geometry(size, params)[0]


def _resize(image, params, context):
    size, box = resize_geometry(image.size, params)
    if size == image.size and box is None:
        return image
    return image.resize(size, Image.Resampling.LANCZOS, box=box, reducing_gap=RESIZE_REDUCING_GAP)


# -- crop -----------------------------------------------------------------------------------------


def _crop_box(size, params):
    left, top = params["left"], params["top"]
    right, bottom = left + params["width"], top + params["height"]
    if right > size[0] or bottom > size[1]:
        raise OperationError(
            ImageFailure.INVALID_CROP,
            f"The crop ({left},{top})-({right},{bottom}) is outside the {size[0]}x{size[1]} image",
        )
    return left, top, right, bottom


def _crop_size(size, params):
    _crop_box(size, params)
    return params["width"], params["height"]


def _crop(image, params, context):
    return image.crop(_crop_box(image.size, params))


# -- rotate ---------------------------------------------------------------------------------------

COLOR_PATTERN = "^#([0-9a-fA-F]{6}|[0-9a-fA-F]{8})$"
# Lossless quarter turns, clockwise (Pillow's ROTATE_* constants turn counter-clockwise).
_CLOCKWISE = {90: Image.Transpose.ROTATE_270, 180: Image.Transpose.ROTATE_180, 270: Image.Transpose.ROTATE_90}


def _rotate_size(size, params):
    degrees = params["degrees"] % 360
    width, height = size
    if not params["expand"] or degrees in (0, 180):
        return size
    if degrees in (90, 270):
        return height, width
    cos, sin = abs(math.cos(math.radians(degrees))), abs(math.sin(math.radians(degrees)))
    return math.ceil(width * cos + height * sin), math.ceil(width * sin + height * cos)


def _rotate(image, params, context):
    degrees = params["degrees"] % 360
    if degrees == 0:
        return image
    if degrees in _CLOCKWISE and (params["expand"] or degrees == 180 or image.width == image.height):
        return image.transpose(_CLOCKWISE[degrees])
    image, fill = _with_background(image, params.get("background"), context)
    if image.mode in ("LA", "RGBA"):  # rotated premultiplied, so the fill colour must be too
        alpha = fill[-1]
        fill = tuple(round(channel * alpha / 255) for channel in fill[:-1]) + (alpha,)
    # Quarter turns that keep a non-square canvas map pixels exactly: no resampling needed.
    resample = Image.Resampling.NEAREST if degrees in _CLOCKWISE else Image.Resampling.BICUBIC
    return _premultiplied(image, lambda im: im.rotate(-degrees, resample, expand=params["expand"], fillcolor=fill))


def _with_background(image, background, context):
    """The image in a mode that can hold the background colour, and that colour in its mode. Without
    a colour: transparent where the output format allows it, else white."""
    if background is None:
        rgba = (0, 0, 0, 0) if context.output_format.supports_alpha else (255, 255, 255, 255)
    else:
        rgba = parse_color(background)
    has_alpha = image.mode in ("LA", "RGBA") or rgba[3] < 255
    grey = image.mode in ("L", "LA") and rgba[0] == rgba[1] == rgba[2]
    mode = ("L" if grey else "RGB") + ("A" if has_alpha else "")
    if image.mode != mode:
        image = image.convert(mode)
    fill = {"L": rgba[0], "LA": (rgba[0], rgba[3]), "RGB": rgba[:3], "RGBA": rgba}[mode]
    return image, fill


def parse_color(text):
    """'#rrggbb' or '#rrggbbaa' -> (r, g, b, a)."""
    digits = text[1:]
    channels = [int(digits[i : i + 2], 16) for i in range(0, len(digits), 2)]
    return tuple(channels) if len(channels) == 4 else (*channels, 255)


# -- flip, grayscale ------------------------------------------------------------------------------

_FLIPS = {"horizontal": Image.Transpose.FLIP_LEFT_RIGHT, "vertical": Image.Transpose.FLIP_TOP_BOTTOM}


def _flip(image, params, context):
    return image.transpose(_FLIPS[params["direction"]])


def _grayscale(image, params, context):
    if image.mode in ("L", "LA"):
        return image
    return image.convert("LA" if image.mode == "RGBA" else "L")


# -- blur, sharpen --------------------------------------------------------------------------------
# shared.filters loads OpenCV and numpy: imported where images are processed (process_service loads
# it at start), not in upload_service, which only validates operations.


def _premultiplied(image, transform):
    """Applies a filter or resampling transform with alpha premultiplied, so that the colour of fully
    transparent pixels (often black) does not bleed into the visible ones."""
    premultiplied = {"RGBA": "RGBa", "LA": "La"}.get(image.mode)
    if premultiplied is None:
        return transform(image)
    return transform(image.convert(premultiplied)).convert(image.mode)


def _blur(image, params, context):
    from shared import filters

    return _premultiplied(image, lambda im: filters.gaussian_blur(im, params["radius"]))


def _sharpen(image, params, context):
    if params["amount"] == 0:
        return image
    from shared import filters

    return _premultiplied(image, lambda im: filters.unsharp_mask(im, params["radius"], params["amount"]))


# -- watermark ------------------------------------------------------------------------------------

POSITIONS = ("top-left", "top-right", "bottom-left", "bottom-right", "center")
WATERMARK_FILL, WATERMARK_OUTLINE = (255, 255, 255, 255), (0, 0, 0, 255)  # readable on any background


def _watermark(image, params, context):
    font, stroke = _watermark_font(image.size, params["text"], params["size"])
    overlay = _text_overlay(params["text"], font, stroke, params["opacity"])
    left, top = _watermark_position(image.size, overlay.size, params["position"], margin=font.size // 2)
    box = (left, top, left + overlay.width, top + overlay.height)
    # Composite only the text's box; the rest of the image is untouched (and never copied).
    region = image.crop(box).convert("RGBA")
    region.alpha_composite(overlay)
    image.paste(region.convert(image.mode), box)
    return image


def _watermark_font(image_size, text, size):
    """The font, `size` x the image's width high, made smaller if the text would not fit inside."""
    font_size = max(1, round(size * image_size[0]))
    font = ImageFont.load_default(font_size)
    text_width, text_height = _text_size(text, font, _stroke(font_size))
    room_width, room_height = image_size[0] - font_size, image_size[1] - font_size  # half a line of margin
    shrink = min(1.0, room_width / text_width if text_width else 1.0, room_height / text_height if text_height else 1.0)
    if shrink < 1.0:
        font_size = max(1, math.floor(font_size * shrink))
        font = ImageFont.load_default(font_size)
    return font, _stroke(font_size)


def _stroke(font_size):
    return max(1, font_size // 16)


def _text_size(text, font, stroke):
    left, top, right, bottom = ImageDraw.Draw(Image.new("L", (1, 1))).textbbox((0, 0), text, font, stroke_width=stroke)
    return right - left, bottom - top


def _text_overlay(text, font, stroke, opacity):
    draw = ImageDraw.Draw(Image.new("L", (1, 1)))
    left, top, right, bottom = draw.textbbox((0, 0), text, font, stroke_width=stroke)
    overlay = Image.new("RGBA", (max(1, right - left), max(1, bottom - top)), (0, 0, 0, 0))
    ImageDraw.Draw(overlay).text(
        (-left, -top), text, fill=WATERMARK_FILL, font=font, stroke_width=stroke, stroke_fill=WATERMARK_OUTLINE
    )
    overlay.putalpha(overlay.getchannel("A").point(lambda value: round(value * opacity)))
    return overlay


def _watermark_position(image_size, overlay_size, position, margin):
    (width, height), (text_width, text_height) = image_size, overlay_size
    if position == "center":
        return (width - text_width) // 2, (height - text_height) // 2
    vertical, horizontal = position.split("-")
    left = margin if horizontal == "left" else width - text_width - margin
    top = margin if vertical == "top" else height - text_height - margin
    return max(0, left), max(0, top)


# -- convert, compress: chosen by the pipeline's encoder, no pixel work ---------------------------


def _unchanged(image, params, context):
    return image


# -- the declarations -----------------------------------------------------------------------------

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
            _resize,
            output_size=_resize_size,
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
            _crop,
            output_size=_crop_size,
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
            _rotate,
            output_size=_rotate_size,
            description="Rotate clockwise.",
        ),
        Operation(
            "flip",
            (Param("direction", STRING, choices=tuple(_FLIPS), description="horizontal mirrors left-right."),),
            _flip,
            description="Mirror the image.",
        ),
        Operation("grayscale", (), _grayscale, description="Convert to greyscale (alpha is kept)."),
        Operation(
            "blur",
            (Param("radius", NUMBER, 0.1, 100, description="Gaussian radius in pixels."),),
            _blur,
            description="Gaussian blur.",
        ),
        Operation(
            "sharpen",
            (
                Param("amount", NUMBER, 0, 10, default=1, description="Strength; 1 adds 100% of the detail."),
                Param("radius", NUMBER, 0.1, 100, default=2, description="Radius of the detail, in pixels."),
            ),
            _sharpen,
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
            _watermark,
            description="Draw white text with a dark outline.",
        ),
        Operation(
            "convert",
            (Param("format", STRING, choices=imaging.CONVERT_FORMATS),),
            _unchanged,
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
            _unchanged,
            description="Output quality. The last compress wins.",
        ),
    )
}


# -- validation -----------------------------------------------------------------------------------


class _Invalid(Exception):
    def __init__(self, field, reason):
        super().__init__(field, reason)
        self.field = field
        self.reason = reason


def validate_operations(raw, max_operations=MAX_OPERATIONS):
    """The operations as plain dicts with defaults filled in, or `errors.InvalidOperations`.

    `raw` is the decoded JSON value (None: no operations). Optional fields without a default
    (resize's width or height, rotate's background) are left out when not given. Integers may be
    written 5 or 5.0 (JSON Schema's integer) and come back as int; booleans are never numbers.
    The details of the error name the operation's `index`, its `type`, the `field` and the `reason`.
    """
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise errors.InvalidOperations("'operations' must be a JSON array", {"reason": "must be an array"})
    if len(raw) > max_operations:
        raise errors.InvalidOperations(
            f"At most {max_operations} operations are allowed",
            {"reason": f"at most {max_operations} operations", "count": len(raw), "max_operations": max_operations},
        )
    return [_validated(index, item) for index, item in enumerate(raw)]


def _validated(index, item):
    name = item.get("type") if isinstance(item, dict) else None
    try:
        return _validate_item(item)
    except _Invalid as invalid:
        label = f"Operation {index}" + (f" ({name})" if isinstance(name, str) else "")
        subject = f"{invalid.field} " if invalid.field else ""
        details = {"index": index, "type": name if isinstance(name, str) else None}
        details.update(field=invalid.field, reason=invalid.reason)
        raise errors.InvalidOperations(f"{label}: {subject}{invalid.reason}", details) from None


def _validate_item(item):
    if not isinstance(item, dict):
        raise _Invalid(None, "must be an object")
    if "type" not in item:
        raise _Invalid("type", "is required")
    name = item["type"]
    if not isinstance(name, str) or name not in OPERATIONS:
        raise _Invalid("type", f"must be one of: {', '.join(OPERATIONS)}")
    operation = OPERATIONS[name]
    for field in item:
        if field != "type" and field not in operation.param_names:
            raise _Invalid(field, "is not a field of this operation")
    result = {"type": name}
    for param in operation.params:
        if param.name in item:
            result[param.name] = _validate_value(param, item[param.name])
        elif param.default is REQUIRED:
            raise _Invalid(param.name, "is required")
        elif param.default is not None:
            result[param.name] = param.default
    if operation.at_least_one_of and not any(name in result for name in operation.at_least_one_of):
        raise _Invalid(operation.at_least_one_of[0], f"give at least one of {' and '.join(operation.at_least_one_of)}")
    return result


def _validate_value(param, value):
    value = _of_kind(param, value)
    if param.choices is not None and value not in param.choices:
        raise _Invalid(param.name, f"must be one of: {', '.join(param.choices)}")
    if param.pattern is not None and not re.fullmatch(param.pattern, value):
        raise _Invalid(param.name, f"must match {param.pattern}")
    if param.min_length is not None and len(value) < param.min_length:
        raise _Invalid(param.name, f"must be at least {param.min_length} characters long")
    if param.max_length is not None and len(value) > param.max_length:
        raise _Invalid(param.name, f"must be at most {param.max_length} characters long")
    _check_range(param, value)
    return value


def _of_kind(param, value):
    """The value if it is of the param's JSON type (an integral float given as integer becomes int)."""
    kind = param.kind
    if kind == BOOLEAN:
        ok = isinstance(value, bool)
    elif kind == STRING:
        ok = isinstance(value, str)
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        ok = False
    elif isinstance(value, float) and not math.isfinite(value):
        raise _Invalid(param.name, "must be a finite number")
    elif kind == INTEGER and isinstance(value, float):
        ok = value.is_integer()
        value = int(value) if ok else value
    else:
        ok = True
    if not ok:
        raise _Invalid(param.name, f"must be {'an' if kind == INTEGER else 'a'} {kind}")
    return value


def _check_range(param, value):
    low, high = param.minimum, param.maximum
    if (low is not None and value < low) or (high is not None and value > high):
        if low is not None and high is not None:
            reason = f"must be between {_number(low)} and {_number(high)}"
        elif low is not None:
            reason = f"must be at least {_number(low)}"
        else:
            reason = f"must be at most {_number(high)}"
        raise _Invalid(param.name, reason)


def _number(value):
    return str(int(value)) if float(value).is_integer() else str(value)


# -- documentation --------------------------------------------------------------------------------


def operations_json_schema(max_operations=MAX_OPERATIONS):
    """JSON Schema (2020-12, as OpenAPI 3.1 uses) of the `operations` array, from the declarations."""
    return {
        "type": "array",
        "maxItems": max_operations,
        "description": "Applied in order to the auto-oriented image.",
        "items": {"oneOf": [_operation_schema(operation) for operation in OPERATIONS.values()]},
    }


def _operation_schema(operation):
    properties = {"type": {"const": operation.name}}
    properties.update((param.name, _param_schema(param)) for param in operation.params)
    schema = {
        "title": operation.name,
        "type": "object",
        "properties": properties,
        "required": ["type"] + [param.name for param in operation.params if param.default is REQUIRED],
        "additionalProperties": False,
    }
    if operation.description:
        schema["description"] = operation.description
    if operation.at_least_one_of:
        schema["anyOf"] = [{"required": [name]} for name in operation.at_least_one_of]
    return schema


def _param_schema(param):
    schema = {"type": param.kind}
    optional = {
        "enum": list(param.choices) if param.choices is not None else None,
        "minimum": param.minimum,
        "maximum": param.maximum,
        "pattern": param.pattern,
        "minLength": param.min_length,
        "maxLength": param.max_length,
        "default": None if param.default is REQUIRED else param.default,
        "description": param.description or None,
    }
    schema.update((key, value) for key, value in optional.items() if value is not None)
    return schema
