"""Validation at the edge: request bodies into plain dicts, or a 400 that names each bad field."""
import json

import marshmallow

from shared import errors

MAX_JSON_BODY_BYTES = 64 * 1024


def json_body(request):
    if request.content_length is not None and request.content_length > MAX_JSON_BODY_BYTES:
        raise errors.ValidationError("The request body is too large for this endpoint")
    raw = request.get_data(cache=False, as_text=False)
    if len(raw) > MAX_JSON_BODY_BYTES:
        raise errors.ValidationError("The request body is too large for this endpoint")
    try:
        body = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise errors.ValidationError("The request body is not valid JSON", {"body": ["Invalid JSON."]})
    if not isinstance(body, dict):
        raise errors.ValidationError("The request body must be a JSON object", {"body": ["Must be an object."]})
    try:
        # JSON may carry lone surrogates ("\ud800"): valid JSON, but no text can be stored or hashed.
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise errors.ValidationError("The request body holds invalid Unicode", {"body": ["Invalid Unicode."]})
    return body


def load(schema, data):
    try:
        return schema.load(data)
    except marshmallow.ValidationError as exc:
        raise errors.ValidationError("Some fields are not valid", exc.normalized_messages())


def load_json(schema, request):
    return load(schema, json_body(request))
