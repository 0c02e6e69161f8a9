"""Validation of upload_service's inputs and the JSON shape of an image."""
import base64
import binascii
import datetime as dt
import functools
import json
import uuid

from marshmallow import Schema, fields, validate

from shared import errors
from upload_service.models import COMPLETED, FAILED

DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE = 20, 100
DEFAULT_WAIT_SECONDS = 30


class ListQuerySchema(Schema):
    limit = fields.Integer(load_default=DEFAULT_PAGE_SIZE, validate=validate.Range(min=1, max=MAX_PAGE_SIZE))
    cursor = fields.String(load_default=None, validate=validate.Length(max=200))


@functools.lru_cache(maxsize=8)
def status_query_schema(max_wait):
    """One schema per configured limit (building a schema class per request cost ~5% of a poll)."""
    class StatusQuerySchema(Schema):
        wait = fields.Float(
            load_default=min(DEFAULT_WAIT_SECONDS, max_wait),
            validate=validate.Range(min=0, max=max_wait),
            allow_nan=False,
        )

    return StatusQuerySchema()


def parse_image_id(value):
    """Image ids are UUIDs; anything else cannot name an image, so it is simply not found."""
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise errors.NotFound("No such image")


def encode_cursor(image):
    raw = json.dumps([image.created_at.isoformat(), str(image.id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor):
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created_at, image_id = json.loads(base64.urlsafe_b64decode(padded))
        return dt.datetime.fromisoformat(created_at), uuid.UUID(image_id)
    except (ValueError, TypeError, binascii.Error):
        raise errors.ValidationError("The cursor is not valid", {"cursor": ["Not a cursor from this API."]})


def download_url(image):
    return f"/api/images/{image.id}/download"


def variant_outputs(image):
    """{name: {"width", "height", "format", "size_bytes", "path"}} of a completed image, in request
    order (an "auto" variant also has `formats`: [{"format", "size_bytes", "path"}]); a row older
    than variants has its one output as `default`."""
    if image.variant_outputs:
        return image.variant_outputs
    return {"default": {
        "width": image.output_width,
        "height": image.output_height,
        "format": image.output_format,
        "size_bytes": image.output_size_bytes,
        "path": image.output_path,
    }}


def primary_output(image):
    """The variant that `Image.output` shows (its stored path is the row's `output_path`)."""
    outputs = variant_outputs(image)
    return next((output for output in outputs.values() if output["path"] == image.output_path), outputs.get("default"))


def output_files(output):
    """The stored objects of one variant: its file, or each format's of an "auto" one."""
    return [output["path"], *(each["path"] for each in output.get("formats", ()))]


def stored_outputs(image):
    """Every output object of the image (all its variants, all their formats), for removal."""
    names = {image.output_path}.union(*(output_files(output) for output in (image.variant_outputs or {}).values()))
    return sorted(name for name in names if name)


def public_output(output):
    """A variant as the contract shows it: without where it is stored."""
    shown = {key: output[key] for key in ("width", "height", "format", "size_bytes")}
    if "formats" in output:
        shown["formats"] = [{"format": each["format"], "size_bytes": each["size_bytes"]} for each in output["formats"]]
    return shown


def image_to_dict(image, media=None):
    """The public `Image`. With `media` (upload_service's MediaUrls), a completed output and each
    variant carry a signed `url` minted now: answers that are cached (the status cache) are made
    without them."""
    body = {
        "id": str(image.id),
        "status": image.status,
        "original_filename": image.original_filename,
        "operations": image.operations,
        "created_at": image.created_at.isoformat(),
        "updated_at": image.updated_at.isoformat(),
        "width": image.width,
        "height": image.height,
        "format": image.format,
        "size_bytes": image.size_bytes,
    }
    if image.status == COMPLETED:
        primary = primary_output(image)
        body["output"] = {**public_output(primary), "download_url": download_url(image)}
        body["variants"] = {name: public_output(output) for name, output in variant_outputs(image).items()}
        if media is not None:
            body["output"]["url"] = media.variant_url(image, primary)[0]
            for name, output in variant_outputs(image).items():
                body["variants"][name]["url"] = media.variant_url(image, output)[0]
    if image.status == FAILED:
        body["error"] = {"code": image.error_code, "message": image.error_message}
        if image.error_details:
            body["error"]["details"] = image.error_details
    return body


def status_to_dict(image):
    body = {"id": str(image.id), "status": image.status, "updated_at": image.updated_at.isoformat()}
    full = image_to_dict(image)
    for key in ("output", "error"):
        if key in full:
            body[key] = full[key]
    return body
