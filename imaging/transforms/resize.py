"""resize: Lanczos, with sharp's fit modes; and how much a JPEG decoder may shrink before it."""
import math

from PIL import Image

from imaging.transforms.base import Transform

# Pillow first shrinks by an integer factor (cheap box reduce) while the remaining Lanczos step still
# spans this many source pixels per output pixel: the same result to the eye, several times faster.
RESIZE_REDUCING_GAP = 3.0


def geometry(size, params):
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


def output_size(size, params):
    return geometry(size, params)[0]


def resize(image, params, context):
    size, box = geometry(image.size, params)
    if size == image.size and box is None:
        return image
    return image.resize(size, Image.Resampling.LANCZOS, box=box, reducing_gap=RESIZE_REDUCING_GAP)


def shrink_on_load(full_size, params):
    """The smallest decoded size this resize can start from for the same result, and the resize to
    apply to an image decoded at least that large; None when it does not shrink.

    A JPEG decoder scales by 1/2, 1/4 or 1/8 nearly for free (DCT scaling) to the smallest scale
    still at least this size; Lanczos finishes. The resize is then pinned to the output size planned
    from the full-resolution dimensions, so the result has exactly the size it would have had."""
    planned, box = geometry(full_size, params)
    needed = planned if box is None else _cover_scaled_size(full_size, planned, box)
    if needed[0] >= full_size[0] or needed[1] >= full_size[1]:
        return None
    if box is not None:
        return needed, params  # cover's output is exactly width x height whatever the decoded size
    return needed, {"type": "resize", "width": planned[0], "height": planned[1], "fit": "fill"}


def _cover_scaled_size(full_size, planned, box):
    """The size the whole image would be scaled to so that `box` becomes `planned`."""
    scale = planned[0] / (box[2] - box[0])
    return math.ceil(full_size[0] * scale), math.ceil(full_size[1] * scale)


RESIZE = Transform("resize", resize, output_size=output_size, shrink_on_load=shrink_on_load)
