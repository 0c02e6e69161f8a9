"""imaging/transforms: each operation of the catalogue has exactly one transform; resize's decoder shortcut."""
import pytest

from imaging.operations import OPERATIONS
from imaging.transforms import TRANSFORMS, Transform, by_operation
from imaging.transforms.resize import geometry, shrink_on_load
from imaging.validation import validate_operations


def test_every_operation_of_the_catalogue_has_its_transform():
    assert set(TRANSFORMS) == set(OPERATIONS)
    assert all(transform.name == name for name, transform in TRANSFORMS.items())


def test_an_operation_without_a_transform_is_refused_at_import():
    without_watermark = [transform for name, transform in TRANSFORMS.items() if name != "watermark"]
    with pytest.raises(ImportError, match="operations without a transform: \\['watermark'\\]"):
        by_operation(without_watermark, OPERATIONS)


def test_a_transform_without_an_operation_or_twice_is_refused():
    with pytest.raises(ImportError, match="transforms without an operation: \\['sepia'\\]"):
        by_operation([*TRANSFORMS.values(), Transform("sepia", lambda image, params, context: image)], OPERATIONS)
    with pytest.raises(ImportError):
        by_operation([*TRANSFORMS.values(), TRANSFORMS["crop"]], OPERATIONS)


def resize(**params):
    return validate_operations([{"type": "resize", **params}])[0]


def test_a_shrinking_resize_may_start_from_a_smaller_decode_and_keeps_its_planned_size():
    params = resize(width=400)
    needed, pinned = shrink_on_load((4000, 3000), params)
    assert needed == (400, 300)
    assert pinned == {"type": "resize", "width": 400, "height": 300, "fit": "fill"}
    # Applied to any larger decode (libjpeg gives 1/2, 1/4 or 1/8), the pinned resize makes the planned size.
    for decoded in ((2000, 1500), (1000, 750), (500, 375)):
        assert geometry(decoded, pinned)[0] == (400, 300)


def test_an_odd_aspect_ratio_keeps_the_size_planned_at_full_resolution():
    params = resize(width=333)
    needed, pinned = shrink_on_load((4001, 2999), params)
    planned = geometry((4001, 2999), params)[0]
    assert (pinned["width"], pinned["height"]) == planned and needed == planned
    assert geometry((1001, 750), pinned)[0] == planned  # a 1/4 decode, rounded up by libjpeg


def test_cover_needs_the_whole_image_scaled_so_that_its_box_is_the_output():
    params = resize(width=300, height=300, fit="cover")
    needed, unchanged = shrink_on_load((4000, 2000), params)
    assert needed == (600, 300) and unchanged == params
    assert geometry((1000, 500), params) == ((300, 300), (250.0, 0.0, 750.0, 500.0))


@pytest.mark.parametrize("params", [dict(width=4000), dict(width=5000), dict(width=100, height=100, fit="fill")])
def test_a_resize_that_does_not_shrink_both_sides_decodes_at_full_size(params):
    assert shrink_on_load((4000, 100), resize(**params)) is None
