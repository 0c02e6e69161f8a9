"""rotate: clockwise, lossless for quarter turns; the uncovered corners take a background colour."""
import math

from PIL import Image

from imaging.transforms.base import Transform, premultiplied

# Lossless quarter turns, clockwise (Pillow's ROTATE_* constants turn counter-clockwise).
_CLOCKWISE = {90: Image.Transpose.ROTATE_270, 180: Image.Transpose.ROTATE_180, 270: Image.Transpose.ROTATE_90}


def output_size(size, params):
    degrees = params["degrees"] % 360
    width, height = size
    if not params["expand"] or degrees in (0, 180):
        return size
    if degrees in (90, 270):
        return height, width
    cos, sin = abs(math.cos(math.radians(degrees))), abs(math.sin(math.radians(degrees)))
    return math.ceil(width * cos + height * sin), math.ceil(width * sin + height * cos)


def rotate(image, params, context):
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
    return premultiplied(image, lambda im: im.rotate(-degrees, resample, expand=params["expand"], fillcolor=fill))


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
    """'#rrggbb' or '#rrggbbaa' (operations.COLOR_PATTERN) -> (r, g, b, a)."""
    digits = text[1:]
    channels = [int(digits[i : i + 2], 16) for i in range(0, len(digits), 2)]
    return tuple(channels) if len(channels) == 4 else (*channels, 255)


ROTATE = Transform("rotate", rotate, output_size=output_size)
