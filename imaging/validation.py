"""An upload's operations checked against the catalogue (imaging/operations.py), with every defect named."""
import math
import re

from imaging.operations import (
    BOOLEAN, DEFAULT_VARIANT, INTEGER, MAX_OPERATIONS, MAX_VARIANTS, OPERATIONS, REQUIRED, STRING,
)
from shared import errors


class _Invalid(Exception):
    def __init__(self, field, reason):
        super().__init__(field, reason)
        self.field = field
        self.reason = reason


def validate_operations(raw, max_operations=MAX_OPERATIONS):
    """The operations as plain dicts with defaults filled in, or `errors.InvalidOperations`.

    `raw` is the decoded JSON value (None: no operations). Optional fields without a default
    (resize's width or height, rotate's background) are left out when not given. Integers may be
    written 5 or 5.0 (JSON Schema's integer) and come back as int; booleans are never numbers.
    The details of the error name the operation's `index`, its `type`, the `field` and the `reason`.
    """
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise errors.InvalidOperations("'operations' must be a JSON array", {"reason": "must be an array"})
    if len(raw) > max_operations:
        raise errors.InvalidOperations(
            f"At most {max_operations} operations are allowed",
            {"reason": f"at most {max_operations} operations", "count": len(raw), "max_operations": max_operations},
        )
    return [_validated(index, item) for index, item in enumerate(raw)]


# A variant's name, and so a preset's: it becomes part of stored names (outputs/<id>.<name>.<ext>).
VARIANT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


def validate_variants(raw_variants, raw_operations, presets, max_operations=MAX_OPERATIONS, max_variants=MAX_VARIANTS):
    """An upload's outputs as `[{"name", "operations"}]` in request order, presets resolved, or
    `errors.InvalidOperations` whose details name the `variant` (None when the field as a whole is wrong).

    `raw_variants` is the decoded `variants` field (None: absent), `raw_operations` the decoded
    `operations` field (None: absent), shorthand for the variant `default`, listed first. Neither
    field (or `variants` an empty object): the one variant `default` with no operations.
    """
    if raw_variants is not None and not isinstance(raw_variants, dict):
        raise _invalid_variants("'variants' must be a JSON object", None, "must be an object")
    variants = []
    if raw_operations is not None or not raw_variants:  # an empty object asks for nothing more: as if absent
        named = {"variant": DEFAULT_VARIANT} if raw_variants else {}
        variants.append({"name": DEFAULT_VARIANT, "operations": _in_variant(named, raw_operations, max_operations)})
    if not raw_variants:
        return variants
    if len(raw_variants) > max_variants:
        raise _invalid_variants(
            f"At most {max_variants} variants are allowed", None, f"at most {max_variants} variants",
            count=len(raw_variants), max_variants=max_variants,
        )
    for name, value in raw_variants.items():
        if not VARIANT_NAME.match(name):
            raise _invalid_variants(f"Variant {name!r}: the name must match {VARIANT_NAME.pattern}", name, "bad name")
        if name == DEFAULT_VARIANT and raw_operations is not None:
            raise _invalid_variants(
                "Variant 'default' is given twice: by 'operations' and in 'variants'", name, "given twice")
        if isinstance(value, str):
            if value not in presets:
                raise _invalid_variants(f"Variant {name!r}: no preset is called {value!r}", name, "unknown preset")
            operations = presets[value]
        else:
            operations = _in_variant({"variant": name}, value, max_operations)
        variants.append({"name": name, "operations": operations})
    return variants


def primary_variant(variants):
    """The variant `Image.output` shows: `default` when there is one, else the first."""
    return next((variant for variant in variants if variant["name"] == DEFAULT_VARIANT), variants[0])


def _in_variant(named, raw, max_operations):
    try:
        return validate_operations(raw, max_operations)
    except errors.InvalidOperations as exc:
        if not named:
            raise
        raise errors.InvalidOperations(f"Variant {named['variant']!r}: {exc.message}", {**named, **exc.details}) from None


def _invalid_variants(message, variant, reason, **more):
    return errors.InvalidOperations(message, {"variant": variant, "field": "variants", "reason": reason, **more})


def _validated(index, item):
    name = item.get("type") if isinstance(item, dict) else None
    try:
        return _validate_item(item)
    except _Invalid as invalid:
        label = f"Operation {index}" + (f" ({name})" if isinstance(name, str) else "")
        subject = f"{invalid.field} " if invalid.field else ""
        details = {"index": index, "type": name if isinstance(name, str) else None}
        details.update(field=invalid.field, reason=invalid.reason)
        raise errors.InvalidOperations(f"{label}: {subject}{invalid.reason}", details) from None


def _validate_item(item):
    if not isinstance(item, dict):
        raise _Invalid(None, "must be an object")
    if "type" not in item:
        raise _Invalid("type", "is required")
    name = item["type"]
    if not isinstance(name, str) or name not in OPERATIONS:
        raise _Invalid("type", f"must be one of: {', '.join(OPERATIONS)}")
    operation = OPERATIONS[name]
    for field in item:
        if field != "type" and field not in operation.param_names:
            raise _Invalid(field, "is not a field of this operation")
    result = {"type": name}
    for param in operation.params:
        if param.name in item:
            result[param.name] = _validate_value(param, item[param.name])
        elif param.default is REQUIRED:
            raise _Invalid(param.name, "is required")
        elif param.default is not None:
            result[param.name] = param.default
    if operation.at_least_one_of and not any(name in result for name in operation.at_least_one_of):
        raise _Invalid(operation.at_least_one_of[0], f"give at least one of {' and '.join(operation.at_least_one_of)}")
    return result


def _validate_value(param, value):
    value = _of_kind(param, value)
    if param.choices is not None and value not in param.choices:
        raise _Invalid(param.name, f"must be one of: {', '.join(param.choices)}")
    if param.pattern is not None and not re.fullmatch(param.pattern, value):
        raise _Invalid(param.name, f"must match {param.pattern}")
    if param.min_length is not None and len(value) < param.min_length:
        raise _Invalid(param.name, f"must be at least {param.min_length} characters long")
    if param.max_length is not None and len(value) > param.max_length:
        raise _Invalid(param.name, f"must be at most {param.max_length} characters long")
    _check_range(param, value)
    return value


def _of_kind(param, value):
    """The value if it is of the param's JSON type (an integral float given as integer becomes int)."""
    kind = param.kind
    if kind == BOOLEAN:
        ok = isinstance(value, bool)
    elif kind == STRING:
        ok = isinstance(value, str)
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        ok = False
    elif isinstance(value, float) and not math.isfinite(value):
        raise _Invalid(param.name, "must be a finite number")
    elif kind == INTEGER and isinstance(value, float):
        ok = value.is_integer()
        value = int(value) if ok else value
    else:
        ok = True
    if not ok:
        raise _Invalid(param.name, f"must be {'an' if kind == INTEGER else 'a'} {kind}")
    return value


def _check_range(param, value):
    low, high = param.minimum, param.maximum
    if (low is not None and value < low) or (high is not None and value > high):
        if low is not None and high is not None:
            reason = f"must be between {_number(low)} and {_number(high)}"
        elif low is not None:
            reason = f"must be at least {_number(low)}"
        else:
            reason = f"must be at most {_number(high)}"
        raise _Invalid(param.name, reason)


def _number(value):
    return str(int(value)) if float(value).is_integer() else str(value)
