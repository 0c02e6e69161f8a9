"""The JSON Schema of an upload's `operations`, written from the catalogue (imaging/operations.py)."""
from imaging.operations import MAX_OPERATIONS, OPERATIONS, REQUIRED


def operations_json_schema(max_operations=MAX_OPERATIONS):
    """JSON Schema (2020-12, as OpenAPI 3.1 uses) of the `operations` array, from the declarations."""
    return {
        "type": "array",
        "maxItems": max_operations,
        "description": "Applied in order to the auto-oriented image.",
        "items": {"oneOf": [_operation_schema(operation) for operation in OPERATIONS.values()]},
    }


def _operation_schema(operation):
    properties = {"type": {"const": operation.name}}
    properties.update((param.name, _param_schema(param)) for param in operation.params)
    schema = {
        "title": operation.name,
        "type": "object",
        "properties": properties,
        "required": ["type"] + [param.name for param in operation.params if param.default is REQUIRED],
        "additionalProperties": False,
    }
    if operation.description:
        schema["description"] = operation.description
    if operation.at_least_one_of:
        schema["anyOf"] = [{"required": [name]} for name in operation.at_least_one_of]
    return schema


def _param_schema(param):
    schema = {"type": param.kind}
    optional = {
        "enum": list(param.choices) if param.choices is not None else None,
        "minimum": param.minimum,
        "maximum": param.maximum,
        "pattern": param.pattern,
        "minLength": param.min_length,
        "maxLength": param.max_length,
        "default": None if param.default is REQUIRED else param.default,
        "description": param.description or None,
    }
    schema.update((key, value) for key, value in optional.items() if value is not None)
    return schema
