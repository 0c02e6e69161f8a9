"""An upload's operations checked against the catalogue (imaging/operations.py), with every defect named."""
import math
import re

from imaging.operations import BOOLEAN, INTEGER, MAX_OPERATIONS, OPERATIONS, REQUIRED, STRING
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
