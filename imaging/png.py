"""PNG output without Pillow's encoder where nothing is lost by it.

Pillow picks a PNG filter for every row by trying all five, and that search is most of its encoding
time (about 20 of 24 ms for a 1000x1000 greyscale image); it cannot be turned off. libpng (through
imagecodecs) with the Paeth filter on every row and zlib's run-length strategy writes files as
small as Pillow's on photos and filtered images, in less than half the time (bench.processing).

Used for the default PNG output (no `compress` step: that one asks for the smallest file, which
Pillow's level 9 + optimize still gives) of 8-bit L, LA, RGB and RGBA images without an ICC profile
(the libpng writer here has no iCCP option). Everything else goes through Pillow.
"""
import zlib

import numpy
# Imported by name, so that the codec loads now, with the service: imagecodecs loads codecs on first
# use under a threading lock, which eventlet's monkey patch makes green, and the first encodes run
# in native threads, where contending for a green lock never ends.
from imagecodecs import PNG, png_encode

FAST_MODES = ("L", "LA", "RGB", "RGBA")


def fast_png(image, icc_profile):
    """The encoded file, or None when Pillow must write this one."""
    if icc_profile or image.mode not in FAST_MODES:
        return None
    return png_encode(numpy.asarray(image), level=6, strategy=zlib.Z_RLE, filter=PNG.FILTER.PAETH)
