"""grayscale: luminance only; alpha is kept."""
from imaging.transforms.base import Transform


def grayscale(image, params, context):
    if image.mode in ("L", "LA"):
        return image
    return image.convert("LA" if image.mode == "RGBA" else "L")


GRAYSCALE = Transform("grayscale", grayscale)
