"""convert and compress: they choose the encoder and its quality (imaging/encoding.py); no pixel work."""
from imaging.transforms.base import Transform


def unchanged(image, params, context):
    return image


CONVERT = Transform("convert", unchanged)
COMPRESS = Transform("compress", unchanged)
