"""What every transform is: the Pillow side of one operation of the catalogue (imaging/operations.py).

Conventions the transforms rely on: the pipeline hands `apply` an upright image in one of the working
modes L, LA, RGB or RGBA, owns it, and may get it back modified in place. `output_size` tells the
pipeline, before anything is allocated, what size `apply` will produce, so that a step over the
pixel limit fails before it runs.
"""
from dataclasses import dataclass
from typing import Callable, Optional

from imaging.formats import ImageFormat


@dataclass(frozen=True)
class Context:
    """What a transform may need to know beyond its own parameters."""

    output_format: ImageFormat


class OperationError(Exception):
    """An operation cannot be applied to this image (e.g. a crop outside it); `code` is an ImageFailure."""

    def __init__(self, code, message):
        super().__init__(code, message)
        self.code = code
        self.message = message


def same_size(size, params):
    return size


@dataclass(frozen=True)
class Transform:
    name: str  # the operation's, in imaging/operations.py
    apply: Callable  # (image, params, context) -> image
    output_size: Callable = same_size  # (size, params) -> size, before anything is allocated
    # (full size, params) -> (smallest decoded size that gives the same result, params to apply to an
    # image decoded at least that large) or None: lets a first step shrink a JPEG in its decoder.
    shrink_on_load: Optional[Callable] = None


def premultiplied(image, transform):
    """Applies a filter or resampling transform with alpha premultiplied, so that the colour of fully
    transparent pixels (often black) does not bleed into the visible ones."""
    premultiplied_mode = {"RGBA": "RGBa", "LA": "La"}.get(image.mode)
    if premultiplied_mode is None:
        return transform(image)
    return transform(image.convert(premultiplied_mode)).convert(image.mode)
