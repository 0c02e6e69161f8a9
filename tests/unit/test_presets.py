"""Presets (imaging/presets.py): validated like operations, defaults when the configuration has none."""
import pytest

from imaging.presets import DEFAULT_PRESETS, InvalidPreset, load_presets
from shared.config import load_config


def test_the_configuration_file_carries_the_defaults():
    assert load_config()["presets"] == DEFAULT_PRESETS


def test_without_presets_the_defaults_apply_with_their_defaults_filled_in():
    presets = load_presets({})
    assert set(presets) == {"thumbnail", "preview"}
    assert presets["thumbnail"] == [{"type": "resize", "width": 256, "height": 256, "fit": "cover"}]
    assert presets["preview"][0]["fit"] == "inside"


def test_an_operators_presets_replace_the_defaults_and_get_defaults_filled_in():
    presets = load_presets({"presets": {"square-jpeg": [{"type": "resize", "width": 500}, {"type": "compress", "quality": 80}]}})
    assert list(presets) == ["square-jpeg"]
    assert presets["square-jpeg"][0] == {"type": "resize", "width": 500, "fit": "contain"}


@pytest.mark.parametrize(
    "presets, named",
    [
        ({"thumb": [{"type": "resize"}]}, "thumb"),  # neither width nor height
        ({"thumb": [{"type": "sepia"}]}, "thumb"),  # no such operation
        ({"thumb": "resize"}, "thumb"),  # not an array
        ({"Thumb": []}, "Thumb"),  # not a variant name
        ({"-thumb": []}, "-thumb"),
    ],
)
def test_a_bad_preset_stops_the_start_and_is_named(presets, named):
    with pytest.raises(InvalidPreset, match=repr(named)):
        load_presets({"presets": presets})


def test_presets_must_be_a_mapping():
    with pytest.raises(InvalidPreset):
        load_presets({"presets": [{"type": "grayscale"}]})
