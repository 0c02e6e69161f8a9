"""The processing pipeline: every accepted corpus file processes as its index says, each operation does
what the contract says, outputs carry no private metadata, failures are PipelineErrors."""
import os
import re
import stat

import pytest
from PIL import Image, ImageFilter, ImageOps, ImageStat, JpegImagePlugin, PngImagePlugin, TiffImagePlugin

from imaging import encoding
from imaging.pipeline import PipelineError, process_image
from imaging import decoding, formats
from imaging.transforms import filters
from shared import errors
from imaging.validation import validate_operations

MAX_PIXELS = 50_000_000
# Pillow warns about the hostile files (bad TIFF tags, corrupt EXIF, invalid APNG): expected here.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:PIL")

OUTPUT_FORMATS = tuple(name for name in formats.CONVERT_FORMATS if name in formats.FORMATS)  # "auto": test_negotiation.py
PRIVATE_MARKERS = (b"Exif\x00\x00", b"http://ns.adobe.com/xap/1.0/", b"<x:xmpmeta", b"GPSInfo", b"secret")


def run(path, operations, out_stem, max_pixels=MAX_PIXELS):
    """process_image with validated operations; returns (result, the output re-opened and loaded)."""
    result = process_image(str(path), validate_operations(operations), out_stem, max_pixels)
    output = Image.open(result["path"])
    output.load()
    return result, output


def assert_no_private_metadata(path):
    data = open(path, "rb").read()
    for marker in PRIVATE_MARKERS:
        assert marker not in data, f"{marker!r} in {path}"
    with Image.open(path) as output:
        assert not {"exif", "xmp", "comment", "XML:com.adobe.xmp", "Raw profile type exif", "photoshop"} & set(
            output.info
        )
        if output.format == "TIFF":
            private_tags = {270, 315, 700, 33432, 33723, 34377, 34665, 34853}  # description...GPS IFD
            assert not private_tags & set(output.tag_v2)
        else:
            assert not output.getexif()
        if output.format == "PNG":
            assert not output.text


def pixels(image):
    """The image's pixel values, row after row (Pillow 13 renamed getdata)."""
    flattened = getattr(image, "get_flattened_data", None) or image.getdata
    return list(flattened())


def mean_value(image):
    values = pixels(image)
    return sum(values) / len(values)


# -- the corpus -----------------------------------------------------------------------------------


def test_every_accepted_corpus_file_resizes_upright_without_metadata(corpus_dir, accepted_corpus_entry, out_stem):
    corpus_entry = accepted_corpus_entry
    info = decoding.inspect_image(corpus_entry.path, MAX_PIXELS)
    result, output = run(corpus_entry.path, [{"type": "resize", "width": 64}], out_stem)

    expected_size = (64, max(1, round(info["height"] * 64 / info["width"])))
    assert (result["width"], result["height"]) == output.size == expected_size
    assert result["format"] == info["format"]  # no convert: the input's format (an MPO is a JPEG)
    assert output.format == formats.FORMATS[result["format"]].pillow
    assert result["path"] == f"{out_stem}.{formats.EXTENSIONS[result['format']]}"
    assert result["mime_type"] == formats.MIME_TYPES[result["format"]]
    assert result["size_bytes"] == os.path.getsize(result["path"]) > 0
    assert_no_private_metadata(result["path"])
    with Image.open(corpus_entry.path) as source:
        source_icc = source.info.get("icc_profile")
    if source_icc and output.mode in ("RGB", "RGBA") and result["format"] not in ("gif", "bmp"):
        assert output.info.get("icc_profile") == source_icc, "the ICC profile is kept"


@pytest.mark.parametrize("output_format", OUTPUT_FORMATS)
def test_every_accepted_corpus_file_converts_to_every_format(
    corpus_dir, accepted_corpus_entry, output_format, out_stem
):
    operations = [{"type": "resize", "width": 48}, {"type": "convert", "format": output_format}]
    result, output = run(accepted_corpus_entry.path, operations, out_stem)
    assert output.format == formats.FORMATS[output_format].pillow
    assert output.size == (result["width"], result["height"])
    if output_format == "jpeg":
        assert output.mode in ("L", "RGB")
    assert_no_private_metadata(result["path"])


@pytest.mark.parametrize("name", ["Landscape_6.jpg", "Landscape_8.jpg"])
def test_rotated_photos_come_out_upright(good_image, out_stem, mean_abs_diff, name):
    _, reference = run(good_image("Landscape_1.jpg"), [{"type": "resize", "width": 300}], out_stem + "-ref")
    _, output = run(good_image(name), [{"type": "resize", "width": 300}], out_stem)
    assert output.size == reference.size == (300, 200)
    assert mean_abs_diff(output, reference) < 4  # the same photo (only its label differs)
    assert mean_abs_diff(output.rotate(180), reference) > 40


def test_a_transposed_portrait_comes_out_upright(good_image, out_stem):
    result, _ = run(good_image("Portrait_5.jpg"), [{"type": "resize", "width": 200}], out_stem)
    assert (result["width"], result["height"]) == (200, 300)


@pytest.mark.parametrize(
    "name", ["exif_imagemagick_orientation.png", "hopper_orientation_6.webp", "avif_rot1mir1.avif"]
)
def test_exif_orientation_is_applied_for_every_format(good_image, out_stem, mean_abs_diff, name):
    if name.endswith(".avif") and not formats.AVIF_AVAILABLE:
        pytest.skip("no AVIF in this Pillow")
    _, output = run(good_image(name), [{"type": "convert", "format": "png"}], out_stem)
    with Image.open(good_image(name)) as source:
        upright = ImageOps.exif_transpose(source)
        assert source.getexif().get(decoding.ORIENTATION_TAG) not in (None, 1)
    assert mean_abs_diff(output, upright) < 1


def test_broken_exif_does_not_fail_the_image(bad_image, out_stem):
    result, _ = run(bad_image("hopper_bad_exif.jpg"), [{"type": "resize", "width": 50}], out_stem)
    assert (result["width"], result["height"]) == (50, 50)
    assert_no_private_metadata(result["path"])


def test_gps_is_stripped(bad_image, out_stem):
    result, _ = run(bad_image("exif_gps_typeerror.jpg"), [], out_stem)
    assert_no_private_metadata(result["path"])


@pytest.mark.parametrize("name", ["transparent.png", "transparent.webp", "avif_transparency.avif", "rgb-alpha-16.png"])
@pytest.mark.parametrize("output_format", ["png", "webp", "avif", "tiff"])
def test_alpha_is_kept_where_the_format_has_it(good_image, out_stem, name, output_format):
    if "avif" in (output_format, name[-4:]) and not formats.AVIF_AVAILABLE:
        pytest.skip("no AVIF in this Pillow")
    _, output = run(good_image(name), [{"type": "convert", "format": output_format}], out_stem)
    assert output.mode == "RGBA"
    assert output.getchannel("A").getextrema()[0] < 128


def test_alpha_is_flattened_on_white_for_jpeg(good_image, out_stem):
    with Image.open(good_image("transparent.png")) as source:
        assert source.getpixel((0, 0))[3] == 0
    _, output = run(good_image("transparent.png"), [{"type": "convert", "format": "jpeg"}], out_stem)
    assert output.mode == "RGB"
    assert all(channel > 245 for channel in output.getpixel((0, 0)))


def test_icc_and_alpha_are_both_kept(good_image, out_stem):
    _, output = run(good_image("icc_profile.png"), [{"type": "resize", "width": 30}], out_stem)
    with Image.open(good_image("icc_profile.png")) as source:
        assert output.info["icc_profile"] == source.info["icc_profile"]
    assert output.mode == "RGBA"


def test_a_big_icc_profile_is_kept_whole(bad_image, out_stem):
    _, output = run(bad_image("icc_profile_big.jpg"), [{"type": "resize", "width": 100}], out_stem)
    assert len(output.info["icc_profile"]) == 399_788


def test_an_rgb_profile_is_not_attached_to_a_greyscale_result(good_image, out_stem):
    _, output = run(good_image("flower2.jpg"), [{"type": "grayscale"}], out_stem)
    assert output.mode == "L" and "icc_profile" not in output.info


@pytest.mark.parametrize("name", ["iss634.gif", "iss634.webp", "iss634.apng", "dispose_bgnd.gif"])
def test_animations_give_their_first_frame(good_image, out_stem, mean_abs_diff, name):
    _, output = run(good_image(name), [{"type": "convert", "format": "png"}], out_stem)
    with Image.open(good_image(name)) as source:
        assert getattr(source, "n_frames", 1) > 1
        first_frame = source.convert("RGBA")
    assert mean_abs_diff(output, first_frame) == 0


def test_a_multipage_tiff_gives_its_first_page(bad_image, out_stem):
    _, output = run(bad_image("multipage.tiff"), [{"type": "convert", "format": "png"}], out_stem)
    with Image.open(bad_image("multipage.tiff")) as source:
        assert source.n_frames == 3
        first_page = source.convert("RGB")
    assert output.size == (10, 10)  # pages 1 and 2 are 10x10 green and red, page 3 is 20x20
    assert output.convert("RGB").getpixel((5, 5)) == first_page.getpixel((5, 5))
    assert first_page.getpixel((5, 5))[1] > 100 and first_page.getpixel((5, 5))[0] == 0


def test_a_gif_whose_later_frame_is_a_bomb_is_fine(bad_image, out_stem):
    result, _ = run(bad_image("decompression_bomb_extents.gif"), [], out_stem)
    assert (result["width"], result["height"], result["format"]) == (100, 100, "gif")


def test_an_mpo_becomes_a_jpeg(good_image, out_stem):
    result, output = run(good_image("sugarshack.mpo"), [], out_stem)
    assert result["format"] == "jpeg" and output.format == "JPEG" and result["path"].endswith(".jpg")
    assert output.size == (640, 480)


def test_16_bit_greyscale_keeps_its_brightness(good_image, out_stem):
    # Pillow's own I;16 -> L conversion clips: these dark samples (291..694 of 65535) would turn white.
    _, output = run(good_image("16bit.cropped.tif"), [{"type": "convert", "format": "png"}], out_stem)
    with Image.open(good_image("16bit.cropped.tif")) as source:
        source_mean = mean_value(source) / 257
    assert output.mode == "L"
    assert abs(mean_value(output) - source_mean) < 1


def test_full_range_16_bit_spans_full_range_8_bit(good_image, out_stem):
    _, output = run(good_image("gray-16.png"), [], out_stem)
    assert output.mode == "L" and output.getextrema() == (0, 255)
    with Image.open(good_image("gray-16.png")) as source:
        assert abs(mean_value(output) - mean_value(source) / 257) < 1


def test_16_bit_greyscale_transparency_becomes_alpha(bad_image, out_stem):
    _, output = run(bad_image("i_trns.png"), [], out_stem)
    assert output.mode == "LA" and output.getchannel("A").getextrema() == (0, 255)


def test_float_samples_are_stretched_to_8_bits(bad_image, out_stem):
    _, output = run(bad_image("10ct_32bit_128.tiff"), [{"type": "convert", "format": "jpeg"}], out_stem)
    assert output.mode == "L" and output.getextrema()[1] - output.getextrema()[0] > 200


def test_cmyk_becomes_rgb(good_image, out_stem, mean_abs_diff):
    _, output = run(good_image("pil_sample_cmyk.jpg"), [{"type": "convert", "format": "png"}], out_stem)
    with Image.open(good_image("pil_sample_cmyk.jpg")) as source:
        assert mean_abs_diff(output, source.convert("RGB")) < 1
    assert output.mode == "RGB"


def test_lab_becomes_srgb(bad_image, good_image, out_stem, mean_abs_diff):
    _, output = run(bad_image("hopper.Lab.tif"), [{"type": "convert", "format": "png"}], out_stem)
    with Image.open(good_image("hopper.tif")) as rgb:
        assert mean_abs_diff(output, rgb) < 4


# -- metadata -------------------------------------------------------------------------------------


def test_jpeg_exif_xmp_and_comment_are_stripped_even_without_operations(make_image, out_stem):
    exif = Image.Exif()
    exif[0x010E] = "secret description"
    path = make_image(
        Image.new("RGB", (32, 32), "red"),
        "jpg",
        exif=exif,
        comment=b"secret comment",
        xmp=b"<x:xmpmeta>secret</x:xmpmeta>",
    )
    result, _ = run(path, [], out_stem)
    assert_no_private_metadata(result["path"])


@pytest.mark.parametrize("output_format", ["gif", "jpeg"])
def test_comments_are_stripped(good_image, out_stem, output_format):
    result, output = run(good_image("hopper.jpg"), [{"type": "convert", "format": output_format}], out_stem)
    assert "comment" not in output.info


def test_tiff_tags_are_stripped_even_without_operations(make_image, out_stem):
    tags = TiffImagePlugin.ImageFileDirectory_v2()
    tags[270] = "secret description"
    tags[315] = "secret artist"
    tags[700] = b"<x:xmpmeta>secret</x:xmpmeta>"
    path = make_image(Image.new("RGB", (32, 32), "red"), "tif", tiffinfo=tags)
    result, _ = run(path, [], out_stem)
    assert_no_private_metadata(result["path"])


def test_png_text_chunks_are_stripped(make_image, out_stem):
    text = PngImagePlugin.PngInfo()
    text.add_text("Comment", "secret comment")
    text.add_itxt("XML:com.adobe.xmp", "<x:xmpmeta>secret</x:xmpmeta>")
    path = make_image(Image.new("RGBA", (32, 32), "red"), "png", pnginfo=text)
    result, _ = run(path, [{"type": "grayscale"}], out_stem)
    assert_no_private_metadata(result["path"])


# -- the operations -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "resize, size",
    [
        ({"width": 32, "height": 32}, (32, 24)),  # contain
        ({"width": 32, "height": 32, "fit": "cover"}, (32, 32)),
        ({"width": 32, "height": 32, "fit": "fill"}, (32, 32)),
        ({"width": 128, "height": 128, "fit": "inside"}, (64, 48)),  # never enlarges
        ({"width": 32, "height": 100, "fit": "inside"}, (32, 24)),
        ({"width": 128, "height": 128}, (128, 96)),  # contain enlarges
        ({"height": 24}, (32, 24)),
        ({"width": 128}, (128, 96)),
        ({"width": 128, "fit": "inside"}, (64, 48)),
        ({"width": 10, "fit": "cover"}, (10, 8)),  # one side: the aspect ratio is kept
    ],
)
def test_resize_fits(make_image, quadrants, out_stem, resize, size):
    result, _ = run(make_image(quadrants((64, 48))), [{"type": "resize", **resize}], out_stem)
    assert (result["width"], result["height"]) == size


def test_cover_crops_the_centre(make_image, quadrants, out_stem):
    operations = [{"type": "resize", "width": 16, "height": 16, "fit": "cover"}]
    _, output = run(make_image(quadrants((64, 32))), operations, out_stem)
    # The centre square of a 2:1 image: half of each top quadrant, red on the left, green on the right.
    assert output.getpixel((1, 1))[:3] == (255, 0, 0)
    assert output.getpixel((14, 1))[:3] == (0, 255, 0)


def test_fill_stretches(make_image, quadrants, out_stem):
    operations = [{"type": "resize", "width": 16, "height": 64, "fit": "fill"}]
    _, output = run(make_image(quadrants((64, 32))), operations, out_stem)
    assert output.size == (16, 64)
    assert output.getpixel((1, 1))[:3] == (255, 0, 0) and output.getpixel((14, 62))[:3] == (255, 255, 255)


def test_crop_cuts_at_the_current_size(make_image, quadrants, out_stem):
    operations = [
        {"type": "resize", "width": 32},  # 32 x 24 from here on
        {"type": "crop", "left": 20, "top": 1, "width": 10, "height": 7},  # inside the green quadrant
    ]
    _, output = run(make_image(quadrants((64, 48))), operations, out_stem)
    assert output.size == (10, 7)
    (_, red_high), (green_low, _), (_, blue_high) = output.getextrema()
    assert red_high < 8 and green_low > 247 and blue_high < 8  # green, away from the resize's ringing


@pytest.mark.parametrize(
    "crop",
    [
        {"left": 60, "top": 0, "width": 5, "height": 5},
        {"left": 0, "top": 0, "width": 65, "height": 48},
        {"left": 0, "top": 48, "width": 1, "height": 1},
    ],
)
def test_a_crop_outside_the_image_fails_with_invalid_crop(make_image, quadrants, out_stem, crop):
    with pytest.raises(PipelineError) as raised:
        run(make_image(quadrants((64, 48))), [{"type": "crop", **crop}], out_stem)
    assert raised.value.code == "invalid_crop"
    assert os.listdir(os.path.dirname(out_stem)) == [], "a failed image leaves nothing behind"


@pytest.mark.parametrize(
    "degrees, top_left, top_right",
    [
        (90, (0, 0, 255), (255, 0, 0)),  # clockwise: bottom-left comes to the top-left
        (-270, (0, 0, 255), (255, 0, 0)),
        (270, (0, 255, 0), (255, 255, 255)),
        (-90, (0, 255, 0), (255, 255, 255)),
        (180, (255, 255, 255), (0, 0, 255)),
        (360, (255, 0, 0), (0, 255, 0)),
    ],
)
def test_quarter_turns_are_lossless_and_clockwise(make_image, quadrants, out_stem, degrees, top_left, top_right):
    source = quadrants((64, 48))
    _, output = run(make_image(source), [{"type": "rotate", "degrees": degrees}], out_stem)
    assert output.size == ((48, 64) if degrees % 180 else (64, 48))
    assert output.getpixel((0, 0)) == top_left
    assert output.getpixel((output.width - 1, 0)) == top_right
    assert sorted(pixels(output)) == sorted(pixels(source)), "no pixel changed, only moved"


def test_a_quarter_turn_without_expand_keeps_the_canvas(make_image, quadrants, out_stem):
    _, output = run(make_image(quadrants((64, 48))), [{"type": "rotate", "degrees": 90, "expand": False}], out_stem)
    assert output.size == (64, 48)


@pytest.mark.parametrize(
    "output_format, corner", [("png", (0, 0, 0, 0)), ("webp", (0, 0, 0, 0)), ("jpeg", (255, 255, 255)), ("bmp", None)]
)
def test_rotate_background_defaults_to_transparent_else_white(make_image, quadrants, out_stem, output_format, corner):
    operations = [{"type": "rotate", "degrees": 45}]
    if output_format == "bmp":  # bmp is not a convert target: a bmp input stays bmp
        path, corner = make_image(quadrants((64, 48)), "bmp"), (255, 255, 255)
    else:
        path = make_image(quadrants((64, 48)))
        operations.append({"type": "convert", "format": output_format})
    _, output = run(path, operations, out_stem)
    assert output.width > 64 and output.height > 48, "expanded"
    pixel = output.getpixel((0, 0))
    if len(corner) == 4:
        assert pixel[3] == 0
    else:
        assert all(abs(a - b) <= 3 for a, b in zip(pixel, corner))


def test_rotate_honours_its_background_and_expand(make_image, quadrants, out_stem):
    operations = [{"type": "rotate", "degrees": 30, "expand": False, "background": "#102030"}]
    _, output = run(make_image(quadrants((64, 48))), operations, out_stem)
    assert output.size == (64, 48) and output.mode == "RGB"
    assert output.getpixel((0, 0)) == (16, 32, 48)


def test_a_translucent_background_makes_an_alpha_channel(make_image, quadrants, out_stem):
    operations = [{"type": "rotate", "degrees": 30, "background": "#ff000080"}]
    _, output = run(make_image(quadrants((64, 48))), operations, out_stem)
    assert output.mode == "RGBA" and output.getpixel((0, 0)) == (255, 0, 0, 128)


@pytest.mark.parametrize("direction, top_left", [("horizontal", (0, 255, 0)), ("vertical", (0, 0, 255))])
def test_flip_mirrors(make_image, quadrants, out_stem, direction, top_left):
    _, output = run(make_image(quadrants()), [{"type": "flip", "direction": direction}], out_stem)
    assert output.getpixel((0, 0)) == top_left


@pytest.mark.parametrize("mode, expected", [("RGB", "L"), ("RGBA", "LA"), ("L", "L")])
def test_grayscale(make_image, quadrants, out_stem, mode, expected):
    _, output = run(make_image(quadrants(mode=mode)), [{"type": "grayscale"}], out_stem)
    assert output.mode == expected


def test_grayscale_is_a_no_op_on_a_greyscale_jpeg(good_image, out_stem, mean_abs_diff):
    operations = [{"type": "grayscale"}, {"type": "convert", "format": "png"}]
    _, output = run(good_image("hopper_gray.jpg"), operations, out_stem)
    with Image.open(good_image("hopper_gray.jpg")) as source:
        assert output.mode == "L" and mean_abs_diff(output, source) == 0


def test_blur_softens_edges(make_image, quadrants, out_stem):
    _, output = run(make_image(quadrants((64, 48))), [{"type": "blur", "radius": 3}], out_stem)
    left, right = output.getpixel((30, 10)), output.getpixel((33, 10))  # across the red | green edge
    assert abs(left[0] - right[0]) < 200 and abs(left[1] - right[1]) < 200


def test_blur_keeps_transparent_colours_out(make_image, out_stem):
    image = Image.new("RGBA", (40, 40), (0, 0, 0, 0))  # transparent black around a white square
    image.paste((255, 255, 255, 255), (10, 10, 30, 30))
    _, output = run(make_image(image), [{"type": "blur", "radius": 3}], out_stem)
    red, _, _, alpha = output.getpixel((9, 20))
    assert 0 < alpha < 255 and red > 240, "no dark fringe"


def test_sharpen_adds_contrast(good_image, out_stem):
    _, plain = run(good_image("hopper.png"), [], out_stem + "-plain")
    _, sharpened = run(good_image("hopper.png"), [{"type": "sharpen", "amount": 2}], out_stem)
    edges = lambda image: ImageStat.Stat(image.convert("L").filter(ImageFilter.FIND_EDGES)).mean[0]  # noqa: E731
    assert edges(sharpened) > edges(plain) * 1.2


def test_sharpen_amount_zero_changes_nothing(good_image, out_stem, mean_abs_diff):
    _, plain = run(good_image("hopper.png"), [], out_stem + "-plain")
    _, output = run(good_image("hopper.png"), [{"type": "sharpen", "amount": 0}], out_stem)
    assert mean_abs_diff(output, plain) == 0


@pytest.mark.parametrize(
    "position, marked, untouched",
    [
        ("bottom-right", (300, 200, 400, 300), (0, 0, 100, 100)),
        ("top-left", (0, 0, 100, 100), (300, 200, 400, 300)),
        ("top-right", (300, 0, 400, 100), (0, 200, 100, 300)),
        ("bottom-left", (0, 200, 100, 300), (300, 0, 400, 100)),
        ("center", (150, 100, 250, 200), (0, 0, 100, 100)),
    ],
)
def test_watermark_marks_its_corner_only(make_image, out_stem, position, marked, untouched):
    source = Image.new("RGB", (400, 300), (128, 128, 128))
    operations = [{"type": "watermark", "text": "WATERMARK", "position": position, "size": 0.06}]
    _, output = run(make_image(source), operations, out_stem)
    assert output.crop(marked).getextrema() != source.crop(marked).getextrema()
    assert output.crop(untouched).getextrema() == source.crop(untouched).getextrema()


def test_watermark_opacity(make_image, out_stem):
    source = Image.new("RGB", (200, 100), (128, 128, 128))
    _, invisible = run(make_image(source), [{"type": "watermark", "text": "x" * 10, "opacity": 0}], out_stem + "-0")
    _, faint = run(make_image(source), [{"type": "watermark", "text": "x" * 10, "opacity": 0.2}], out_stem + "-2")
    _, strong = run(make_image(source), [{"type": "watermark", "text": "x" * 10, "opacity": 1}], out_stem + "-9")
    assert invisible.getextrema() == source.getextrema()
    assert faint.getextrema()[0][1] < strong.getextrema()[0][1]


def test_a_long_watermark_is_fitted_inside_a_small_image(make_image, out_stem):
    source = Image.new("RGBA", (40, 20), (128, 128, 128, 255))
    result, output = run(make_image(source), [{"type": "watermark", "text": "W" * 200, "size": 1}], out_stem)
    assert output.size == (40, 20)


@pytest.mark.parametrize("output_format", OUTPUT_FORMATS)
def test_convert_writes_the_format(good_image, out_stem, output_format):
    result, output = run(good_image("hopper.png"), [{"type": "convert", "format": output_format}], out_stem)
    assert output.format == formats.FORMATS[output_format].pillow
    assert result["format"] == output_format
    assert result["path"].endswith("." + formats.EXTENSIONS[output_format])


def test_the_last_convert_wins(good_image, out_stem):
    operations = [{"type": "convert", "format": "gif"}, {"type": "convert", "format": "webp"}]
    assert run(good_image("hopper.png"), operations, out_stem)[0]["format"] == "webp"


@pytest.mark.parametrize("output_format", ["jpeg", "webp", "avif"])
def test_compress_trades_quality_for_size(good_image, out_stem, output_format):
    if output_format == "avif" and not formats.AVIF_AVAILABLE:
        pytest.skip("no AVIF in this Pillow")
    sizes = [
        run(
            good_image("flower.jpg"),
            [{"type": "convert", "format": output_format}, {"type": "compress", "quality": quality}],
            f"{out_stem}-{quality}",
        )[0]["size_bytes"]
        for quality in (10, 95)
    ]
    assert sizes[0] < sizes[1] * 0.6


def test_compress_on_png_stays_lossless(good_image, out_stem, mean_abs_diff):
    plain, plain_output = run(good_image("hopper.png"), [], out_stem + "-plain")
    small, small_output = run(good_image("hopper.png"), [{"type": "compress", "quality": 1}], out_stem)
    assert small["size_bytes"] <= plain["size_bytes"]
    assert mean_abs_diff(small_output, plain_output) == 0


def test_default_quality_per_format(good_image, out_stem):
    assert encoding.DEFAULT_QUALITY == {"jpeg": 85, "webp": 80, "avif": 60}


# -- JPEG draft -----------------------------------------------------------------------------------


@pytest.fixture
def draft_calls(monkeypatch):
    calls = []
    original = JpegImagePlugin.JpegImageFile.draft

    def spy(self, mode, size):
        calls.append((self.size, size))
        return original(self, mode, size)

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    return calls


@pytest.mark.parametrize(
    "name, resize",
    [
        ("Landscape_1.jpg", {"width": 300}),
        ("Landscape_1.jpg", {"width": 450, "height": 450}),  # exactly 1/4: the decoder does it all
        ("Landscape_1.jpg", {"width": 301, "height": 301, "fit": "cover"}),
        ("Landscape_6.jpg", {"height": 250}),  # stored sideways: the draft size is turned too
        ("Portrait_5.jpg", {"width": 333, "height": 333, "fit": "inside"}),
        ("flower.jpg", {"width": 77, "height": 50, "fit": "fill"}),
    ],
)
def test_a_jpeg_downscale_decodes_small_with_the_same_result(
    good_image, out_stem, mean_abs_diff, draft_calls, name, resize
):
    operations = [{"type": "resize", **resize}, {"type": "convert", "format": "png"}]
    drafted_result, drafted = run(good_image(name), operations, out_stem + "-draft")
    assert draft_calls and draft_calls[0][1][0] < draft_calls[0][0][0], "decoded at a reduced scale"
    # A step first, even a no-op, keeps the decoder at full size.
    _, full = run(good_image(name), [{"type": "compress", "quality": 90}, *operations], out_stem + "-full")
    assert drafted.size == full.size
    assert mean_abs_diff(drafted, full) < 3


def test_no_draft_when_enlarging_or_not_first(good_image, out_stem, draft_calls):
    run(good_image("flower.jpg"), [{"type": "resize", "width": 1000}], out_stem)
    run(good_image("flower.jpg"), [{"type": "grayscale"}, {"type": "resize", "width": 10}], out_stem)
    assert draft_calls == []


# -- limits and failures --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "operations, max_pixels",
    [
        ([{"type": "resize", "width": 10000, "height": 10000, "fit": "fill"}], MAX_PIXELS),
        ([{"type": "resize", "width": 10000}], MAX_PIXELS),
        ([{"type": "rotate", "degrees": 45}], 20_000),  # 128 x 128 = 16,384; turned 45 degrees: 33,124
    ],
)
def test_a_step_that_would_exceed_the_pixel_limit_fails_before_allocating(
    good_image, out_stem, monkeypatch, operations, max_pixels
):
    def must_not_run(*args, **kwargs):
        raise AssertionError("allocated the oversized image")

    monkeypatch.setattr(Image.Image, "resize", must_not_run)  # were it called, the code would be processing_error
    monkeypatch.setattr(Image.Image, "rotate", must_not_run)
    with pytest.raises(PipelineError) as raised:
        run(good_image("hopper.jpg"), operations, out_stem, max_pixels=max_pixels)
    assert raised.value.code == "too_large"
    assert os.listdir(os.path.dirname(out_stem)) == []


def test_an_input_over_the_pixel_limit_fails_with_too_large(good_image, out_stem):
    with pytest.raises(PipelineError) as raised:
        run(good_image("hopper.jpg"), [], out_stem, max_pixels=128 * 128 - 1)
    assert raised.value.code == "too_large"


@pytest.mark.parametrize(
    "name",
    [
        "truncated_jpeg.jpg",
        "truncated_end_chunk.png",
        "eps_zero_bb.eps",
        "crash-0c7e0e8e11ce787078f00b5b0ca409a167f070e0.tif",
    ],
)
def test_an_undecodable_original_fails_with_decode_error(bad_image, out_stem, name):
    with pytest.raises(PipelineError) as raised:
        run(bad_image(name), [{"type": "resize", "width": 10}], out_stem)
    assert raised.value.code == "decode_error"
    assert os.listdir(os.path.dirname(out_stem)) == []


def test_bombs_fail_with_too_large(bad_image, out_stem):
    with pytest.raises(PipelineError) as raised:
        run(bad_image("bmp_b_reallybig.bmp"), [], out_stem)
    assert raised.value.code == "too_large"


def test_malformed_operations_fail_cleanly(good_image, out_stem):
    for operations in ([{"type": "rotate"}], "resize", [{"type": "resize", "width": 0}]):
        with pytest.raises(PipelineError) as raised:
            process_image(str(good_image("hopper.jpg")), operations, out_stem, MAX_PIXELS)
        assert raised.value.code == "invalid_operations"


def test_pillow_errors_in_a_step_become_processing_error(good_image, out_stem, monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError("broken filter")

    monkeypatch.setattr(filters, "gaussian_blur", broken)
    with pytest.raises(PipelineError) as raised:
        run(good_image("hopper.jpg"), [{"type": "blur", "radius": 1}], out_stem)
    assert raised.value.code == "processing_error"


def test_encoder_errors_become_encode_error_and_leave_no_file(good_image, out_stem, monkeypatch):
    def broken(self, fp, *args, **kwargs):
        fp.write(b"half an image")
        raise OSError("encoder error -2")

    monkeypatch.setattr(Image.Image, "save", broken)
    with pytest.raises(PipelineError) as raised:
        run(good_image("hopper.jpg"), [], out_stem)
    assert raised.value.code == "encode_error"
    assert os.listdir(os.path.dirname(out_stem)) == []


def test_the_output_is_written_atomically_and_readable(good_image, out_stem):
    result, _ = run(good_image("hopper.jpg"), [], out_stem)
    assert os.listdir(os.path.dirname(out_stem)) == ["result.jpg"], "no temporary file left"
    assert stat.S_IMODE(os.stat(result["path"]).st_mode) == 0o644
    second, _ = run(good_image("hopper.png"), [{"type": "convert", "format": "jpeg"}], out_stem)
    assert second["path"] == result["path"], "a retry replaces the previous output"


def test_the_output_is_written_under_a_partial_name_that_upload_service_can_clear(good_image, out_stem, monkeypatch):
    """`.<image id>.<random>.part` while written (shared/partial_files.py). If it is cleared
    meanwhile (this job's claim ran out and another took over) the job stands down for a retry
    instead of failing the image."""
    renames = []
    real_replace = os.replace

    def replace(source, target):
        renames.append((os.path.basename(source), os.path.basename(target)))
        return real_replace(source, target)

    monkeypatch.setattr(encoding.os, "replace", replace)
    run(good_image("hopper.jpg"), [], out_stem)
    [(partial, final)] = renames
    assert final == "result.jpg" and re.fullmatch(r"\.result\.[0-9a-f]{32}\.part", partial), partial

    def cleared_before_the_rename(source, target):
        os.unlink(source)
        return real_replace(source, target)

    monkeypatch.setattr(encoding.os, "replace", cleared_before_the_rename)
    with pytest.raises(errors.ServiceUnavailable):
        run(good_image("hopper.png"), [], out_stem)
    assert os.listdir(os.path.dirname(out_stem)) == ["result.jpg"]


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "PA", "RGB", "RGBA", "CMYK", "I;16", "I", "F"])
@pytest.mark.parametrize("output_format", OUTPUT_FORMATS)
def test_every_mode_reaches_every_format(make_image, quadrants, out_stem, mode, output_format):
    source = quadrants((32, 24))
    if mode in ("I;16", "I", "F"):
        source = source.convert("L").point(lambda value: value * 200, "I").convert(mode)
    elif mode == "PA":
        source = source.convert("RGBA").convert("P")
        source.info["transparency"] = 0
    else:
        source = source.convert(mode)
    extension = "png" if mode in ("PA", "LA") else "tif"
    path = make_image(source, extension)
    operations = [{"type": "resize", "width": 16}, {"type": "convert", "format": output_format}]
    result, output = run(path, operations, out_stem)
    assert output.size == (16, 12)
    assert output.format == formats.FORMATS[output_format].pillow


def test_the_pipeline_runs_in_parallel_threads(good_image, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    def one(index):
        operations = validate_operations([{"type": "resize", "width": 50 + index}])
        result = process_image(str(good_image("flower.jpg")), operations, str(tmp_path / f"r{index}"), MAX_PIXELS)
        return result["width"]

    with ThreadPoolExecutor(4) as pool:
        assert sorted(pool.map(one, range(8))) == [50 + index for index in range(8)]


def test_errors_are_not_api_errors():
    # The worker reports codes by event; an ApiError would be mistaken for a request's error.
    assert not issubclass(PipelineError, errors.ApiError)
    assert str(PipelineError("too_large", "big")) == "too_large: big"
