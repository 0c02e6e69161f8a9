"""Upload-time inspection: every corpus file gets the outcome its index names, and the rules behind it."""
import io
import subprocess

import pytest
from PIL import Image, ImageFile

from imaging import decoding, formats
from shared import errors

MAX_PIXELS = 50_000_000  # the contract's default

# Pillow warns about the hostile files (bad TIFF tags, corrupt EXIF, invalid APNG): expected here.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:PIL")
OUTCOME_ERRORS = {"too_large": errors.TooLarge, "unsupported": errors.UnsupportedMediaType}


def test_every_corpus_file_gets_its_expected_outcome(corpus_dir, corpus_entry):
    if corpus_entry.outcome == "accept":
        info = decoding.inspect_image(corpus_entry.path, MAX_PIXELS)
        assert info["format"] in formats.FORMATS
        assert info["mime_type"] == formats.MIME_TYPES[info["format"]]
        assert info["width"] > 0 and info["height"] > 0
    else:
        with pytest.raises(OUTCOME_ERRORS[corpus_entry.outcome]):
            decoding.inspect_image(corpus_entry.path, MAX_PIXELS)


def test_the_index_lists_every_corpus_file(corpus_dir, all_corpus_entries):
    listed = {(entry.folder, entry.file) for entry in all_corpus_entries}
    for folder in ("good-images", "bad-images"):
        present = {path.name for path in (corpus_dir / folder).iterdir()} - {"README.txt", "index.json"}
        assert present == {name for listed_folder, name in listed if listed_folder == folder}


@pytest.mark.parametrize(
    "name, size",
    [
        ("Landscape_1.jpg", (1800, 1200)),
        ("Landscape_6.jpg", (1800, 1200)),  # stored 1200x1800, Orientation 6
        ("Landscape_8.jpg", (1800, 1200)),
        ("Portrait_5.jpg", (1200, 1800)),  # stored 1800x1200, Orientation 5
        ("avif_rot1mir1.avif", (640, 427)),  # stored 427x640; irot/imir reported as Orientation 7
        ("hopper.jpg", (128, 128)),
    ],
)
def test_the_reported_size_is_the_upright_one(good_image, name, size):
    info = decoding.inspect_image(good_image(name), MAX_PIXELS)
    assert (info["width"], info["height"]) == size


def test_an_mpo_is_a_jpeg(good_image):
    assert decoding.inspect_image(good_image("sugarshack.mpo"), MAX_PIXELS) == {
        "width": 640,
        "height": 480,
        "format": "jpeg",
        "mime_type": "image/jpeg",
    }


def test_the_pixel_limit_applies_to_the_header(good_image):
    path = good_image("hopper.jpg")  # 128 x 128
    assert decoding.inspect_image(path, 128 * 128)["width"] == 128
    with pytest.raises(errors.TooLarge) as raised:
        decoding.inspect_image(path, 128 * 128 - 1)
    assert raised.value.details == {"width": 128, "height": 128, "max_pixels": 128 * 128 - 1}


def test_a_large_image_is_refused_before_it_is_decoded(make_image, monkeypatch):
    path = make_image(Image.new("1", (8000, 8000)), "png")  # 64 Mpx, a few KB on disk
    monkeypatch.setattr(ImageFile.ImageFile, "load", _must_not_decode)
    with pytest.raises(errors.TooLarge):
        decoding.inspect_image(path, MAX_PIXELS)


def _must_not_decode(self):
    raise AssertionError("decoded although the header is over the limit")


def test_pillows_own_bomb_error_is_too_large(bad_image):
    # 4.3 Gpx GIF header: Pillow raises DecompressionBombError inside Image.open.
    with pytest.raises(errors.TooLarge):
        decoding.inspect_image(bad_image("decompression_bomb.gif"), 10**12)


def test_header_size_reads_only_the_header(good_image, bad_image, monkeypatch):
    monkeypatch.setattr(ImageFile.ImageFile, "load", _must_not_decode)
    assert decoding.header_size(good_image("Landscape_6.jpg")) == (1200, 1800)  # stored, not upright
    with pytest.raises(errors.UnsupportedMediaType):
        decoding.header_size(bad_image("eps_zero_bb.eps"))
    with pytest.raises(errors.TooLarge):
        decoding.header_size(bad_image("bmp_b_reallybig.bmp"))


@pytest.mark.parametrize(
    "content",
    [b"", b"hello, I am a text file\n", b"\xff\xd8\xff\xe0" + b"\x00" * 20, b"GIF89a", b"%PDF-1.4\n"],
    ids=["empty", "text", "jpeg-magic-only", "gif-magic-only", "pdf"],
)
def test_things_that_are_not_images_are_unsupported(tmp_path, content):
    path = tmp_path / "photo.jpg"
    path.write_bytes(content)
    with pytest.raises(errors.UnsupportedMediaType):
        decoding.inspect_image(path, MAX_PIXELS)


def test_a_format_outside_the_allow_list_is_unsupported_whatever_its_name(make_image):
    path = make_image(Image.new("RGB", (8, 8)), "png", format="PCX")  # a valid PCX named .png
    with pytest.raises(errors.UnsupportedMediaType):
        decoding.inspect_image(path, MAX_PIXELS)


def test_postscript_never_reaches_ghostscript(bad_image, monkeypatch):
    started = []
    monkeypatch.setattr(subprocess, "Popen", lambda *args, **kwargs: started.append(args))
    monkeypatch.setattr(subprocess, "check_call", lambda *args, **kwargs: started.append(args))
    with pytest.raises(errors.UnsupportedMediaType):
        decoding.inspect_image(bad_image("eps_zero_bb.eps"), MAX_PIXELS)
    assert started == []


def test_a_truncated_file_is_refused_on_the_first_decode_error(bad_image):
    # Pillow returns these on a second load(); the first error must be final.
    for name in ("truncated_end_chunk.png", "broken_data_stream.png", "badadler.png", "truncated_jpeg.jpg"):
        with pytest.raises(errors.UnsupportedMediaType):
            decoding.inspect_image(bad_image(name), MAX_PIXELS)


def test_the_unidentified_reason_does_not_leak_the_server_path(bad_image):
    with pytest.raises(errors.UnsupportedMediaType) as raised:
        decoding.inspect_image(bad_image("psd-oob-write-overflow.psd"), MAX_PIXELS)
    assert "corpus" not in str(raised.value.details)


def test_a_missing_file_is_not_the_uploaders_fault(tmp_path):
    with pytest.raises(FileNotFoundError):
        decoding.inspect_image(tmp_path / "nothing.jpg", MAX_PIXELS)


def test_a_broken_exif_block_reads_as_upright(bad_image):
    assert decoding.inspect_image(bad_image("hopper_bad_exif.jpg"), MAX_PIXELS)["width"] == 500


def test_the_allow_list():
    assert "MPO" not in formats.ALLOWED_FORMATS  # Pillow has no MPO opener: naming it raises KeyError
    assert set(formats.ALLOWED_FORMATS) >= {"JPEG", "PNG", "WEBP", "GIF", "TIFF", "BMP"}
    assert not {"EPS", "PSD", "DDS", "PDF", "SVG"} & set(formats.ALLOWED_FORMATS)
    assert formats.FORMAT_NAMES["MPO"] == "jpeg"
    assert not ImageFile.LOAD_TRUNCATED_IMAGES


@pytest.mark.parametrize(
    "name, mime_type, extension",
    [
        ("jpeg", "image/jpeg", "jpg"),
        ("png", "image/png", "png"),
        ("webp", "image/webp", "webp"),
        ("gif", "image/gif", "gif"),
        ("tiff", "image/tiff", "tiff"),
        ("bmp", "image/bmp", "bmp"),
    ],
)
def test_mime_types_and_extensions(name, mime_type, extension):
    assert (formats.MIME_TYPES[name], formats.EXTENSIONS[name]) == (mime_type, extension)


def test_avif_where_pillow_has_it():
    assert ("avif" in formats.FORMATS) == formats.AVIF_AVAILABLE
    if formats.AVIF_AVAILABLE:
        assert formats.MIME_TYPES["avif"] == "image/avif"


def _answer(check, path):
    try:
        check(path)
    except (errors.UnsupportedMediaType, errors.TooLarge) as refused:
        return type(refused).__name__
    return "accepted"


def _full_decode(path):
    """What the upload's check would answer without the JPEG draft: every pixel at full scale."""
    with decoding.open_image(path, MAX_PIXELS) as image:
        decoding.decode(image)


def _damaged_jpegs(folder):
    """A photo-like JPEG cut and corrupted in its entropy-coded data, where a draft decode could
    differ from a full one if it skipped any of it."""
    import random

    rnd = random.Random(15)
    photo = Image.frombytes("RGB", (640, 480), rnd.randbytes(640 * 480 * 3))

    def encoded(**options):
        buffer = io.BytesIO()
        photo.save(buffer, "JPEG", quality=90, **options)
        return buffer.getvalue()

    data = encoded()
    scan = data.index(b"\xff\xda")
    variants = {f"cut-{share}": data[: scan + (len(data) - scan) * share // 100] for share in (10, 50, 90, 99)}
    # Other kinds of colour JPEG the grey draft decode must read as well: RGB without YCbCr (Adobe
    # transform 0), progressive, no chroma subsampling; whole and cut.
    for kind, options in {"rgb": {"keep_rgb": True}, "progressive": {"progressive": True}, "444": {"subsampling": 0}}.items():
        whole = encoded(**options)
        variants[kind] = whole
        variants[f"{kind}-cut"] = whole[: len(whole) * 2 // 3]
    for share in (20, 60):
        at = scan + (len(data) - scan) * share // 100
        variants[f"eoi-{share}"] = data[:at] + b"\xff\xd9" + data[at:]
        variants[f"garbage-{share}"] = data[:at] + rnd.randbytes(4096) + data[at + 4096:]
        variants[f"marker-{share}"] = data[:at] + b"\xff\xd0\xff\xc4\x00\x02" + data[at:]  # stray RST and DHT
    paths = []
    for name, content in variants.items():
        path = folder / f"{name}.jpg"
        path.write_bytes(content)
        paths.append(path)
    return paths


def test_the_jpeg_draft_decode_answers_every_file_as_a_full_decode_does(corpus_dir, tmp_path):
    """The upload check decodes a JPEG at 1/8 scale (DCT scaling: the same entropy-coded data, a
    fraction of the work); libjpeg reports a cut or corrupt stream the same way at any scale."""
    jpegs = [path for folder in ("good-images", "bad-images") for path in sorted((corpus_dir / folder).iterdir())
             if path.suffix.lower() in (".jpg", ".jpeg", ".mpo")]
    assert jpegs, "the corpus has JPEGs"
    answers = {path.name: (_answer(lambda p: decoding.inspect_image(p, MAX_PIXELS), path), _answer(_full_decode, path))
               for path in jpegs + _damaged_jpegs(tmp_path)}
    assert {name: draft for name, (draft, full) in answers.items() if draft != full} == {}
    assert answers["cut-50.jpg"][0] == "UnsupportedMediaType"
    assert answers["rgb.jpg"][0] == answers["progressive.jpg"][0] == "accepted"
