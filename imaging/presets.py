"""Named pipelines (contract "Variants"): `presets:` in config.yaml, each an operations array that an
upload's variant may name instead of spelling it out. They are checked when a service starts, with
the operations' own validation, so a typo in the configuration stops the start instead of failing
users' uploads."""
from imaging.validation import VARIANT_NAME, validate_operations
from shared import errors

# The defaults written into config.yaml (shared/settings.py) and used by a configuration without
# `presets:`. sharp's fit names: `cover` fills then centre-crops, `inside` never enlarges.
DEFAULT_PRESETS = {
    "thumbnail": [{"type": "resize", "width": 256, "height": 256, "fit": "cover"}],
    "preview": [{"type": "resize", "width": 1280, "height": 1280, "fit": "inside"}],
}
# A preset's name is a variant's name: the same pattern.
PRESET_NAME = VARIANT_NAME


class InvalidPreset(ValueError):
    """A preset in the configuration that an upload could not use."""


def load_presets(config):
    """The configuration's presets, validated, with defaults filled in (as an upload's
    operations are); the defaults when the configuration has none."""
    raw = config.get("presets")
    if raw is None:
        raw = DEFAULT_PRESETS
    if not isinstance(raw, dict):
        raise InvalidPreset("`presets` must map names to operations arrays")
    presets = {}
    for name, operations in raw.items():
        if not isinstance(name, str) or not PRESET_NAME.match(name):
            raise InvalidPreset(f"preset name {name!r} must match {PRESET_NAME.pattern}")
        try:
            presets[name] = validate_operations(operations)
        except errors.InvalidOperations as exc:
            raise InvalidPreset(f"preset {name!r}: {exc.message} {exc.details or ''}".rstrip()) from exc
    return presets
