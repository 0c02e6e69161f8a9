"""Variants (contract "Variants"): what an upload's `variants` field may be, each refusal naming the
variant, and the pipeline making every variant of one decode, all or none."""
import io
import json
import os

import pytest
from PIL import Image, ImageChops, ImageStat

from imaging import decoding, pipeline
from imaging.failures import PipelineError
from imaging.presets import DEFAULT_PRESETS, load_presets
from imaging.validation import primary_variant, validate_variants
from shared import errors
from tests.unit.test_upload_service import form, multipart, png_bytes, stored_files, store, worker  # noqa: F401
from upload_service.service import form_json

PRESETS = load_presets({})
RESIZE = {"type": "resize", "width": 4}
RESIZE_VALIDATED = {"type": "resize", "width": 4, "fit": "contain"}


def refusal(raw_variants, raw_operations=None, **limits):
    with pytest.raises(errors.InvalidOperations) as refused:
        validate_variants(raw_variants, raw_operations, PRESETS, **limits)
    return refused.value


def test_neither_field_is_the_default_variant_with_no_operations():
    assert validate_variants(None, None, PRESETS) == [{"name": "default", "operations": []}]


def test_operations_alone_are_the_default_variant():
    assert validate_variants(None, [RESIZE], PRESETS) == [{"name": "default", "operations": [RESIZE_VALIDATED]}]


def test_variants_keep_their_order_and_presets_are_resolved():
    variants = validate_variants({"thumb": "thumbnail", "small": [RESIZE]}, [{"type": "grayscale"}], PRESETS)
    assert variants == [
        {"name": "default", "operations": [{"type": "grayscale"}]},
        {"name": "thumb", "operations": PRESETS["thumbnail"]},
        {"name": "small", "operations": [RESIZE_VALIDATED]},
    ]
    assert PRESETS["thumbnail"] == [dict(DEFAULT_PRESETS["thumbnail"][0])]


def test_the_primary_variant_is_default_else_the_first():
    assert primary_variant(validate_variants({"a": [], "b": []}, None, PRESETS))["name"] == "a"
    assert primary_variant(validate_variants({"a": [], "default": [RESIZE]}, None, PRESETS))["name"] == "default"


@pytest.mark.parametrize("raw_variants, raw_operations, variant, reason", [
    (["thumbnail"], None, None, "must be an object"),
    ("thumbnail", None, None, "must be an object"),
    ({f"v{i}": [] for i in range(11)}, None, None, "at most 10 variants"),
    ({"Big": []}, None, "Big", "bad name"),
    ({"-big": []}, None, "-big", "bad name"),
    ({"a" * 33: []}, None, "a" * 33, "bad name"),
    ({"thumb": "no-such-preset"}, None, "thumb", "unknown preset"),
    ({"default": []}, [], "default", "given twice"),
    ({"ok": [], "bad": [{"type": "resize", "width": 0}]}, None, "bad", "must be between 1 and 10000"),
    ({"bad": {"type": "grayscale"}}, None, "bad", "must be an array"),
    ({"ok": []}, [{"type": "nope"}], "default", None),
])
def test_every_refusal_names_its_variant(raw_variants, raw_operations, variant, reason):
    refused = refusal(raw_variants, raw_operations)
    assert refused.details["variant"] == variant
    if reason is not None:
        assert refused.details["reason"] == reason
    if variant is not None:
        assert repr(variant) in refused.message


def test_bad_operations_in_a_variant_keep_their_own_details():
    refused = refusal({"big": [{"type": "grayscale"}, {"type": "resize", "width": 0}]})
    assert refused.details == {
        "variant": "big", "index": 1, "type": "resize", "field": "width", "reason": "must be between 1 and 10000",
    }


def test_each_variant_may_have_the_operations_limit_and_no_more():
    assert validate_variants({"a": [RESIZE] * 20, "b": [RESIZE] * 20}, None, PRESETS)
    assert refusal({"a": [RESIZE] * 21}).details["variant"] == "a"
    assert refusal({f"v{i}": [] for i in range(3)}, max_variants=2).details["max_variants"] == 2


def test_ten_variants_are_allowed():
    assert len(validate_variants({f"v{i}": "thumbnail" for i in range(10)}, None, PRESETS)) == 10


@pytest.mark.parametrize("fields, reason", [
    ({"variants": "{"}, "invalid JSON"),
    ({"variants": ["{}", "{}"]}, "sent more than once"),
    ({"variants": (io.BytesIO(b"\xff"), "v.json")}, "not UTF-8"),
])
def test_a_bad_variants_field_says_why_and_that_it_is_variants(fields, reason):
    with pytest.raises(errors.InvalidOperations) as refused:
        form_json(form(**fields), "variants")
    assert refused.value.details == {"reason": reason, "variant": None, "field": "variants"}


def test_an_absent_or_empty_field_is_none():
    assert form_json(form(), "variants") is None
    assert form_json(form(variants=" "), "variants") is None
    assert form_json(form(variants='{"a": "thumbnail"}'), "variants") == {"a": "thumbnail"}


def test_a_bad_variant_is_refused_before_anything_is_stored(worker, store):  # noqa: F811
    worker.presets = PRESETS
    request = multipart(png_bytes(), extra={"variants": json.dumps({"thumb": "thumbnail", "x": "nope"})})
    with pytest.raises(errors.InvalidOperations) as refused:
        worker.upload(request)
    assert refused.value.details["variant"] == "x"
    assert stored_files(store) == []
    worker.db.session.add.assert_not_called()


# -- the pipeline ---------------------------------------------------------------------------------


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "photo.jpg"
    Image.new("RGB", (400, 300), "teal").save(path, "JPEG")
    return path


def stems(folder):
    return lambda name: str(folder / f"out.{name}")


def test_every_variant_comes_from_one_decode(photo, tmp_path, monkeypatch):
    decodes = []
    real_decode = decoding.decode
    monkeypatch.setattr(decoding, "decode", lambda source: (decodes.append(source), real_decode(source))[1])
    variants = validate_variants({
        "thumb": "thumbnail",
        "big": [{"type": "resize", "width": 200}, {"type": "convert", "format": "webp"}],
        "gray": [{"type": "grayscale"}, {"type": "convert", "format": "png"}],
    }, None, PRESETS)
    results = pipeline.process_variants(str(photo), variants, stems(tmp_path), 50_000_000)
    assert len(decodes) == 1
    assert [r["name"] for r in results] == ["thumb", "big", "gray"]
    expected = {"thumb": ((256, 256), "JPEG"), "big": ((200, 150), "WEBP"), "gray": ((400, 300), "PNG")}
    for result in results:
        size, pillow_format = expected[result["name"]]
        assert result["path"].startswith(str(tmp_path / f"out.{result['name']}."))
        with Image.open(result["path"]) as output:
            assert (output.size, output.format) == (size, pillow_format)
            assert (result["width"], result["height"]) == size


def test_a_failing_variant_fails_them_all_by_name_and_leaves_no_file(photo, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    variants = validate_variants({
        "ok": [{"type": "grayscale"}],
        "cropped": [{"type": "crop", "left": 390, "top": 0, "width": 100, "height": 10}],
        "never": [],
    }, None, PRESETS)
    with pytest.raises(PipelineError) as failed:
        pipeline.process_variants(str(photo), variants, stems(out), 50_000_000)
    assert failed.value.code == "invalid_crop" and failed.value.variant == "cropped"
    assert os.listdir(out) == []


def gradient_photo(path, size=(2400, 1600)):
    """A photo-like image (a flat one would hide any difference between two resamplings)."""
    gradient = Image.linear_gradient("L").resize(size)
    Image.merge("RGB", [gradient, gradient.transpose(Image.Transpose.ROTATE_180), gradient.rotate(90).resize(size)]).save(path)
    return path


WEB_SET = {"thumbnail": "thumbnail", "preview": "preview", "small": [{"type": "resize", "width": 150}],
           "medium": [{"type": "resize", "height": 300, "fit": "inside"}, {"type": "convert", "format": "png"}]}


def test_variants_that_all_shrink_share_one_resize_and_get_what_they_would_alone(tmp_path):
    photo = gradient_photo(tmp_path / "photo.png")
    variants = validate_variants(WEB_SET, None, PRESETS)
    timings = []
    together = pipeline.process_variants(str(photo), variants, stems(tmp_path), 50_000_000, timings)
    shared = [(ended - started) for step, _, started, ended in timings if step == "shared_resize"]
    assert len(shared) == 1

    for result, variant in zip(together, variants):
        alone = pipeline.process_image(str(photo), variant["operations"], str(tmp_path / f"alone.{variant['name']}"), 50_000_000)
        assert (result["width"], result["height"]) == (alone["width"], alone["height"]), variant["name"]
        with Image.open(result["path"]) as shared_output, Image.open(alone["path"]) as alone_output:
            difference = ImageChops.difference(shared_output.convert("RGB"), alone_output.convert("RGB"))
            mean = sum(ImageStat.Stat(difference).mean) / 3
            assert mean < 1.5, f"{variant['name']}: mean difference {mean:.2f} of 255"


def test_no_shared_resize_when_a_variant_keeps_the_full_size(tmp_path):
    photo = gradient_photo(tmp_path / "photo.png")
    variants = validate_variants({**WEB_SET, "full": [{"type": "grayscale"}]}, None, PRESETS)
    timings = []
    results = pipeline.process_variants(str(photo), variants, stems(tmp_path), 50_000_000, timings)
    assert "shared_resize" not in [step for step, *_ in timings]
    assert (results[-1]["width"], results[-1]["height"]) == (2400, 1600)


def test_the_failure_reported_is_the_first_variant_in_request_order(photo, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    variants = validate_variants({
        "slow": [{"type": "blur", "radius": 8}, {"type": "crop", "left": 390, "top": 0, "width": 100, "height": 10}],
        "fast": [{"type": "crop", "left": 0, "top": 290, "width": 10, "height": 100}],
        "fine": [{"type": "grayscale"}],
    }, None, PRESETS)
    with pytest.raises(PipelineError) as failed:
        pipeline.process_variants(str(photo), variants, stems(out), 50_000_000)
    assert failed.value.variant == "slow"
    assert os.listdir(out) == []


def test_an_empty_variants_object_asks_for_nothing_more():
    # Found by the contract fuzzing: `variants={}` made the upload a 500 (no primary variant).
    assert validate_variants({}, None, PRESETS) == [{"name": "default", "operations": []}]
    assert validate_variants({}, [RESIZE], PRESETS) == [{"name": "default", "operations": [RESIZE_VALIDATED]}]
    assert primary_variant(validate_variants({}, None, PRESETS))["name"] == "default"
    for not_an_object in ([], "", 0, [["a", []]]):
        assert refusal(not_an_object).details["variant"] is None
