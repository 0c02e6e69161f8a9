"""Validation of the operations at the edge, and the JSON Schema generated from the same declarations."""
import math

import jsonschema
import pytest

from imaging import formats
from imaging.operations import MAX_OPERATIONS, OPERATIONS
from imaging.schema import operations_json_schema
from imaging.validation import validate_operations
from shared import errors
from shared.config import REPO_ROOT

VALID = [
    ({"type": "resize", "width": 300}, {"type": "resize", "width": 300, "fit": "contain"}),
    ({"type": "resize", "height": 1}, {"type": "resize", "height": 1, "fit": "contain"}),
    (
        {"type": "resize", "width": 10000, "height": 10000, "fit": "cover"},
        {"type": "resize", "width": 10000, "height": 10000, "fit": "cover"},
    ),
    ({"type": "resize", "width": 5, "fit": "fill"}, {"type": "resize", "width": 5, "fit": "fill"}),
    ({"type": "resize", "width": 5, "fit": "inside"}, {"type": "resize", "width": 5, "fit": "inside"}),
    ({"type": "resize", "width": 300.0}, {"type": "resize", "width": 300, "fit": "contain"}),
    (
        {"type": "crop", "left": 0, "top": 0, "width": 1, "height": 1},
        {"type": "crop", "left": 0, "top": 0, "width": 1, "height": 1},
    ),
    ({"type": "rotate", "degrees": 90}, {"type": "rotate", "degrees": 90, "expand": True}),
    ({"type": "rotate", "degrees": -12.5, "expand": False}, {"type": "rotate", "degrees": -12.5, "expand": False}),
    ({"type": "rotate", "degrees": 1e6}, {"type": "rotate", "degrees": 1e6, "expand": True}),
    (
        {"type": "rotate", "degrees": 45, "background": "#FFaa00"},
        {"type": "rotate", "degrees": 45, "expand": True, "background": "#FFaa00"},
    ),
    (
        {"type": "rotate", "degrees": 45, "background": "#00000080"},
        {"type": "rotate", "degrees": 45, "expand": True, "background": "#00000080"},
    ),
    ({"type": "flip", "direction": "horizontal"}, {"type": "flip", "direction": "horizontal"}),
    ({"type": "flip", "direction": "vertical"}, {"type": "flip", "direction": "vertical"}),
    ({"type": "grayscale"}, {"type": "grayscale"}),
    ({"type": "blur", "radius": 0.1}, {"type": "blur", "radius": 0.1}),
    ({"type": "blur", "radius": 100}, {"type": "blur", "radius": 100}),
    ({"type": "sharpen"}, {"type": "sharpen", "amount": 1, "radius": 2}),
    ({"type": "sharpen", "amount": 0, "radius": 0.5}, {"type": "sharpen", "amount": 0, "radius": 0.5}),
    (
        {"type": "watermark", "text": "x"},
        {"type": "watermark", "text": "x", "position": "bottom-right", "opacity": 0.5, "size": 0.05},
    ),
    (
        {"type": "watermark", "text": "é" * 200, "position": "center", "opacity": 0, "size": 1},
        {"type": "watermark", "text": "é" * 200, "position": "center", "opacity": 0, "size": 1},
    ),
    ({"type": "convert", "format": "jpeg"}, {"type": "convert", "format": "jpeg"}),
    ({"type": "convert", "format": "gif"}, {"type": "convert", "format": "gif"}),
    ({"type": "compress", "quality": 1}, {"type": "compress", "quality": 1}),
    ({"type": "compress", "quality": 100}, {"type": "compress", "quality": 100}),
]

# (operation, the field the error names, words of its reason)
INVALID = [
    ({"type": "resize"}, "width", "at least one of width and height"),
    ({"type": "resize", "width": 0}, "width", "between 1 and 10000"),
    ({"type": "resize", "height": 10001}, "height", "between 1 and 10000"),
    ({"type": "resize", "width": 10.5}, "width", "must be an integer"),
    ({"type": "resize", "width": "100"}, "width", "must be an integer"),
    ({"type": "resize", "width": True}, "width", "must be an integer"),
    ({"type": "resize", "width": None}, "width", "must be an integer"),
    ({"type": "resize", "width": 10, "fit": "stretch"}, "fit", "must be one of"),
    ({"type": "resize", "width": 10, "fit": "COVER"}, "fit", "must be one of"),
    ({"type": "crop", "left": 0, "top": 0, "width": 10}, "height", "is required"),
    ({"type": "crop", "left": -1, "top": 0, "width": 10, "height": 10}, "left", "at least 0"),
    ({"type": "crop", "left": 0, "top": 0, "width": 0, "height": 10}, "width", "at least 1"),
    ({"type": "crop", "left": 0, "top": False, "width": 1, "height": 10}, "top", "must be an integer"),
    ({"type": "rotate"}, "degrees", "is required"),
    ({"type": "rotate", "degrees": "90"}, "degrees", "must be a number"),
    ({"type": "rotate", "degrees": True}, "degrees", "must be a number"),
    ({"type": "rotate", "degrees": math.nan}, "degrees", "finite"),
    ({"type": "rotate", "degrees": math.inf}, "degrees", "finite"),
    ({"type": "rotate", "degrees": 90, "expand": 1}, "expand", "must be a boolean"),
    ({"type": "rotate", "degrees": 90, "expand": "true"}, "expand", "must be a boolean"),
    ({"type": "rotate", "degrees": 90, "background": "white"}, "background", "must match"),
    ({"type": "rotate", "degrees": 90, "background": "#fff"}, "background", "must match"),
    ({"type": "rotate", "degrees": 90, "background": "#aabbcc\n"}, "background", "must match"),
    ({"type": "rotate", "degrees": 90, "background": "#aabbccd"}, "background", "must match"),
    ({"type": "flip"}, "direction", "is required"),
    ({"type": "flip", "direction": "diagonal"}, "direction", "must be one of"),
    ({"type": "grayscale", "amount": 1}, "amount", "not a field"),
    ({"type": "blur"}, "radius", "is required"),
    ({"type": "blur", "radius": 0}, "radius", "between 0.1 and 100"),
    ({"type": "blur", "radius": 100.5}, "radius", "between 0.1 and 100"),
    ({"type": "sharpen", "amount": 11}, "amount", "between 0 and 10"),
    ({"type": "sharpen", "amount": -1}, "amount", "between 0 and 10"),
    ({"type": "sharpen", "radius": 0}, "radius", "between 0.1 and 100"),
    ({"type": "watermark"}, "text", "is required"),
    ({"type": "watermark", "text": ""}, "text", "at least 1"),
    ({"type": "watermark", "text": "x" * 201}, "text", "at most 200"),
    ({"type": "watermark", "text": 5}, "text", "must be a string"),
    ({"type": "watermark", "text": "x", "position": "top"}, "position", "must be one of"),
    ({"type": "watermark", "text": "x", "opacity": 1.5}, "opacity", "between 0 and 1"),
    ({"type": "watermark", "text": "x", "size": 0}, "size", "between 0.01 and 1"),
    ({"type": "convert", "format": "bmp"}, "format", "must be one of"),
    ({"type": "convert", "format": "JPEG"}, "format", "must be one of"),
    ({"type": "convert"}, "format", "is required"),
    ({"type": "compress", "quality": 0}, "quality", "between 1 and 100"),
    ({"type": "compress", "quality": 101}, "quality", "between 1 and 100"),
    ({"type": "compress", "quality": 50.5}, "quality", "must be an integer"),
    ({"type": "explode"}, "type", "must be one of"),
    ({"type": 3}, "type", "must be one of"),
    ({"width": 10}, "type", "is required"),
    ({"type": "blur", "radius": 1, "extra": True}, "extra", "not a field"),
]


@pytest.mark.parametrize("operation, normalised", VALID, ids=lambda value: str(value)[:60])
def test_a_valid_operation_comes_back_normalised_with_defaults(operation, normalised):
    assert validate_operations([operation]) == [normalised]


def test_integral_floats_become_ints():
    [resize] = validate_operations([{"type": "resize", "width": 300.0}])
    assert type(resize["width"]) is int


@pytest.mark.parametrize("operation, field, reason", INVALID, ids=lambda value: str(value)[:60])
def test_an_invalid_operation_is_refused_naming_index_type_field_and_reason(operation, field, reason):
    operations = [{"type": "grayscale"}, operation]
    with pytest.raises(errors.InvalidOperations) as raised:
        validate_operations(operations)
    details = raised.value.details
    assert details["index"] == 1
    assert details["type"] == (operation.get("type") if isinstance(operation.get("type"), str) else None)
    assert details["field"] == field
    assert reason in details["reason"]
    assert reason in raised.value.message and raised.value.message.startswith("Operation 1")


def test_the_details_match_the_contract_example():
    with pytest.raises(errors.InvalidOperations) as raised:
        validate_operations([{"type": "grayscale"}, {"type": "grayscale"}, {"type": "resize", "width": 0}])
    assert raised.value.details == {
        "index": 2,
        "type": "resize",
        "field": "width",
        "reason": "must be between 1 and 10000",
    }


@pytest.mark.parametrize("raw", [{"type": "resize"}, "[]", 5, True])
def test_operations_must_be_an_array(raw):
    with pytest.raises(errors.InvalidOperations) as raised:
        validate_operations(raw)
    assert raised.value.details["reason"] == "must be an array"


@pytest.mark.parametrize("item", [[], "resize", 5, None])
def test_each_operation_must_be_an_object(item):
    with pytest.raises(errors.InvalidOperations) as raised:
        validate_operations([item])
    assert raised.value.details == {"index": 0, "type": None, "field": None, "reason": "must be an object"}


def test_no_operations():
    assert validate_operations(None) == []
    assert validate_operations([]) == []


def test_at_most_max_operations():
    assert len(validate_operations([{"type": "grayscale"}] * MAX_OPERATIONS)) == MAX_OPERATIONS
    with pytest.raises(errors.InvalidOperations) as raised:
        validate_operations([{"type": "grayscale"}] * (MAX_OPERATIONS + 1))
    assert raised.value.details["max_operations"] == MAX_OPERATIONS
    with pytest.raises(errors.InvalidOperations):
        validate_operations([{"type": "grayscale"}] * 3, max_operations=2)


def test_validation_is_idempotent():
    operations = [normalised for _, normalised in VALID]
    assert validate_operations(operations, max_operations=len(operations)) == operations


def test_the_input_is_not_modified():
    operation = {"type": "sharpen"}
    validate_operations([operation])
    assert operation == {"type": "sharpen"}


def test_avif_is_offered_exactly_when_pillow_can_encode_it():
    offered = [param.choices for param in OPERATIONS["convert"].params][0]
    assert ("avif" in offered) == formats.AVIF_AVAILABLE
    assert set(offered) <= set(formats.FORMATS) | {"auto"}  # auto: several of them (imaging/negotiation.py)


# -- the schema ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def schema():
    return operations_json_schema()


def test_the_schema_is_valid_json_schema(schema):
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["type"] == "array" and schema["maxItems"] == MAX_OPERATIONS
    assert operations_json_schema(max_operations=5)["maxItems"] == 5


def test_the_schema_has_one_branch_per_operation(schema):
    branches = schema["items"]["oneOf"]
    assert [branch["properties"]["type"]["const"] for branch in branches] == list(OPERATIONS)
    for branch in branches:
        assert branch["additionalProperties"] is False
        assert "type" in branch["required"]


def test_the_schema_carries_ranges_choices_and_defaults(schema):
    branches = {branch["title"]: branch for branch in schema["items"]["oneOf"]}
    width = branches["resize"]["properties"]["width"]
    assert (width["type"], width["minimum"], width["maximum"]) == ("integer", 1, 10000)
    assert branches["resize"]["properties"]["fit"]["enum"] == ["contain", "cover", "fill", "inside"]
    assert branches["resize"]["properties"]["fit"]["default"] == "contain"
    assert branches["resize"]["anyOf"] == [{"required": ["width"]}, {"required": ["height"]}]
    assert branches["crop"]["required"] == ["type", "left", "top", "width", "height"]
    assert branches["watermark"]["properties"]["text"]["maxLength"] == 200
    assert branches["rotate"]["properties"]["background"]["pattern"].startswith("^#")
    assert branches["sharpen"]["properties"]["radius"]["default"] == 2


@pytest.mark.parametrize("operation, normalised", VALID, ids=lambda value: str(value)[:60])
def test_what_validates_matches_the_schema(schema, operation, normalised):
    jsonschema.validate([operation], schema)


@pytest.mark.parametrize(
    "operation",
    # Left out: NaN and infinity, which are not JSON; a trailing newline, which Python's `re` (used
    # by the jsonschema package) lets `$` match before, unlike the ECMA-262 regexes JSON Schema means.
    [op for op, _, reason in INVALID if "finite" not in reason and "\n" not in str(op.get("background"))],
    ids=lambda value: str(value)[:60],
)
def test_what_is_refused_the_schema_refuses_too(schema, operation):
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate([operation], schema)


def test_the_readmes_table_of_operations_lists_the_catalogue_with_each_field():
    readme = (REPO_ROOT / "README.md").read_text()
    table = readme[readme.index("| type | fields |"):]
    table = table[: table.index("\n\n")]
    rows = {row.split("|")[1].strip().strip("`"): row.split("|")[2] for row in table.splitlines()[2:]}
    assert list(rows) == list(OPERATIONS)
    for name, operation in OPERATIONS.items():
        missing = [param.name for param in operation.params if f"`{param.name}`" not in rows[name]]
        assert not missing, f"README's row for {name} does not name {missing}"
