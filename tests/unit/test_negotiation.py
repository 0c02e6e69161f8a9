"""`"format": "auto"` in the pipeline (imaging/negotiation.py): one output written in AVIF, WebP and
the fallback every client decodes, all or none."""
import os

import pytest
from PIL import Image

from imaging import negotiation
from imaging.formats import AVIF_AVAILABLE, FORMATS
from imaging.pipeline import PipelineError, process_image, written_files
from imaging.validation import validate_operations
from shared import errors

MAX_PIXELS = 50_000_000
NEGOTIATED = (["avif"] if AVIF_AVAILABLE else []) + ["webp"]


def photo(path, mode="RGB", size=(320, 200)):
    """A gradient with detail (a flat image would make every format tiny)."""
    gradient = Image.linear_gradient("L").resize(size)
    image = Image.merge("RGB", [gradient, gradient.rotate(90), gradient.transpose(Image.Transpose.FLIP_LEFT_RIGHT)])
    if mode == "RGBA":
        image = image.convert("RGBA")
    image.save(path)
    return path


def auto(path, tmp_path, *steps):
    operations = validate_operations([*steps, {"type": "convert", "format": "auto"}])
    (tmp_path / "out").mkdir(exist_ok=True)
    return process_image(str(path), operations, str(tmp_path / "out" / "image"), MAX_PIXELS)


@pytest.fixture
def out(tmp_path):
    (tmp_path / "out").mkdir(exist_ok=True)
    return tmp_path / "out"


def formats_of(result):
    return [each["format"] for each in result["formats"]]


def test_an_opaque_image_is_written_in_each_format_with_a_jpeg_fallback(tmp_path, out):
    result = auto(photo(tmp_path / "in.png"), tmp_path, {"type": "resize", "width": 160})

    assert formats_of(result) == [*NEGOTIATED, "jpeg"]
    assert result["format"] == "jpeg" and result["path"].endswith(".jpg")  # `format` names the fallback
    assert result["size_bytes"] == result["formats"][-1]["size_bytes"]
    for each in result["formats"]:
        with Image.open(each["path"]) as written:
            assert written.format == FORMATS[each["format"]].pillow
            assert written.size == (160, 100)
        assert os.path.getsize(each["path"]) == each["size_bytes"]
        assert each["mime_type"] == FORMATS[each["format"]].mime_type
    assert sorted(os.listdir(out)) == sorted(os.path.basename(path) for path in written_files(result))


def test_transparency_makes_the_fallback_a_png_but_an_opaque_alpha_channel_does_not(tmp_path):
    opaque = auto(photo(tmp_path / "opaque.png", "RGBA"), tmp_path)
    assert opaque["format"] == "jpeg"

    transparent_path = tmp_path / "transparent.png"
    with Image.open(photo(tmp_path / "base.png", "RGBA")) as image:
        image.paste((0, 0, 0, 0), (0, 0, 64, 64))
        image.save(transparent_path)
    transparent = auto(transparent_path, tmp_path)
    assert formats_of(transparent) == [*NEGOTIATED, "png"]
    for each in transparent["formats"]:
        with Image.open(each["path"]) as written:
            # AVIF and WebP code alpha lossily: near the edge of the hole it is not exactly 0
            assert written.convert("RGBA").getpixel((32, 32))[3] < 8, each["format"]


def test_a_rotated_photo_gets_white_corners_and_stays_a_jpeg(tmp_path):
    result = auto(photo(tmp_path / "in.jpg"), tmp_path, {"type": "rotate", "degrees": 30})
    assert result["format"] == "jpeg"
    with Image.open(result["formats"][0]["path"]) as written:
        corner = written.convert("RGBA").getpixel((0, 0))
    assert corner[3] == 255 and min(corner[:3]) > 240


def test_a_rotated_transparent_image_keeps_transparent_corners(tmp_path):
    path = tmp_path / "in.png"
    Image.new("RGBA", (100, 60), (10, 200, 30, 128)).save(path)
    result = auto(path, tmp_path, {"type": "rotate", "degrees": 30})
    assert result["format"] == "png"
    with Image.open(result["path"]) as written:
        assert written.getpixel((0, 0))[3] == 0


@pytest.mark.skipif(not AVIF_AVAILABLE, reason="this Pillow writes no AVIF")
def test_avif_is_written_at_the_measured_speed(tmp_path, monkeypatch):
    speeds = []
    original_save = Image.Image.save

    def recording_save(image, fp, format=None, **options):  # noqa: A002 - Pillow's own name
        if format == "AVIF":
            speeds.append(options.get("speed"))
        return original_save(image, fp, format, **options)

    monkeypatch.setattr(Image.Image, "save", recording_save)
    auto(photo(tmp_path / "in.png"), tmp_path)
    assert speeds == [negotiation.AVIF_SPEED]


def test_a_failed_encode_leaves_no_format_behind(tmp_path, out, monkeypatch):
    encode = negotiation.encode

    def failing_on_the_fallback(image, output_format, *args, **kwargs):
        if output_format.name == "jpeg":
            raise errors.ServiceUnavailable("No space left to write the result")
        return encode(image, output_format, *args, **kwargs)

    monkeypatch.setattr(negotiation, "encode", failing_on_the_fallback)
    with pytest.raises(errors.ServiceUnavailable):
        auto(photo(tmp_path / "in.png"), tmp_path)
    assert os.listdir(out) == []


def test_auto_is_a_format_convert_accepts_and_nothing_else_is():
    assert validate_operations([{"type": "convert", "format": "auto"}]) == [{"type": "convert", "format": "auto"}]
    with pytest.raises(errors.InvalidOperations):
        validate_operations([{"type": "convert", "format": "automatic"}])


def test_variants_of_one_upload_mix_auto_and_plain_formats(tmp_path, out):
    from imaging.pipeline import process_variants

    variants = [
        {"name": "small", "operations": [{"type": "resize", "width": 80}, {"type": "convert", "format": "auto"}]},
        {"name": "large", "operations": [{"type": "convert", "format": "webp"}]},
    ]
    results = process_variants(str(photo(tmp_path / "in.png")), variants, lambda name: str(out / name), MAX_PIXELS)
    assert [result["name"] for result in results] == ["small", "large"]
    assert formats_of(results[0]) == [*NEGOTIATED, "jpeg"] and "formats" not in results[1]
    assert len(os.listdir(out)) == len(NEGOTIATED) + 2
