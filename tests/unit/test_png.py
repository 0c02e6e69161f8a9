"""The fast PNG writer: the same pixels as Pillow's, nothing but the image in the file, and Pillow
for whatever it cannot write."""
import io
import struct

import pytest
from PIL import Image, ImageDraw

from imaging.png import fast_png


def picture(mode, size=(97, 61)):
    """Not flat: gradients and shapes, so that every PNG filter has work to do."""
    image = Image.radial_gradient("L").resize(size).convert(mode)
    ImageDraw.Draw(image).ellipse((10, 5, 60, 50), fill=(200, 30, 90, 128)[: len(mode)] if mode != "L" else 40)
    return image


def chunk_types(data):
    types, offset = [], 8
    while offset < len(data):
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        types.append(kind.decode())
        offset += 12 + length
    return types


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
def test_pixels_and_mode_are_kept(mode):
    original = picture(mode)
    data = fast_png(original, icc_profile=None)
    decoded = Image.open(io.BytesIO(data))
    assert decoded.format == "PNG" and decoded.mode == mode and decoded.size == original.size
    assert decoded.tobytes() == original.tobytes()


def test_the_file_holds_the_image_and_nothing_else():
    image = picture("RGB")
    image.info.update({"dpi": (300, 300), "comment": "secret"})
    assert set(chunk_types(fast_png(image, None))) == {"IHDR", "IDAT", "IEND"}


@pytest.mark.parametrize("mode", ["P", "1", "I;16", "I", "F", "CMYK"])
def test_other_modes_are_left_to_pillow(mode):
    assert fast_png(Image.new(mode, (8, 8)), None) is None


def test_an_icc_profile_is_left_to_pillow():
    assert fast_png(picture("RGB"), icc_profile=b"\0" * 200) is None


def test_as_small_as_pillows_adaptive_filters_on_a_photo_like_image():
    image = picture("RGB", (400, 300)).filter(__import__("PIL.ImageFilter").ImageFilter.GaussianBlur(2))
    pillow = io.BytesIO()
    image.save(pillow, "PNG", compress_type=3)  # zlib.Z_RLE, as the pipeline did before
    assert len(fast_png(image, None)) <= 1.10 * pillow.tell()
