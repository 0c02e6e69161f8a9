"""flip: a mirror image, left-right or top-bottom."""
from PIL import Image

from imaging.transforms.base import Transform

_TRANSPOSITIONS = {"horizontal": Image.Transpose.FLIP_LEFT_RIGHT, "vertical": Image.Transpose.FLIP_TOP_BOTTOM}


def flip(image, params, context):
    return image.transpose(_TRANSPOSITIONS[params["direction"]])


FLIP = Transform("flip", flip)
