"""Keeps the parts of openapi.yaml that code declares equal to the code: `components.schemas.Operations`
(imaging/schema.py) and the image error codes of `components.schemas.ImageError` (imaging/failures.py);
and writes the same document as openapi.json, for browsers (the web console), which read no YAML.

    python -m imaging.openapi            rewrite openapi.yaml with the generated schema, and openapi.json
    python -m imaging.openapi --check    exit 1 (and say so) when either file is out of date

The rest of the document is kept as it is, but the file is re-serialised by PyYAML: comments are
not preserved, so openapi.yaml must not rely on any.
"""
import argparse
import json
import sys
from pathlib import Path

import yaml

from imaging.failures import ImageFailure
from imaging.validation import VARIANT_NAME
from imaging.schema import operations_json_schema

OPENAPI_FILE = Path(__file__).resolve().parent.parent / "openapi.yaml"


def generated_operations_schema():
    """The schema as it reads back from YAML/JSON (lists, not tuples; plain types only)."""
    return json.loads(json.dumps(operations_json_schema()))


def generated_image_error_schema():
    """`ImageError`: why a `failed` image failed, one code per ImageFailure, each described."""
    codes = "\n".join(
        f"- `{failure}`: {failure.description}{' (may succeed if uploaded again later)' if failure.retryable else ''}"
        for failure in ImageFailure
    )
    return {
        "type": "object",
        "description": f"Why processing failed; present once `status` is `failed`. Codes:\n{codes}\n",
        "required": ["code", "message"],
        "properties": {
            "code": {"type": "string", "enum": [str(failure) for failure in ImageFailure],
                     "examples": [str(ImageFailure.INVALID_CROP)]},
            "message": {"type": "string"},
            "details": {
                "type": "object",
                "description": "Present when one variant failed: `variant` names it (contract \"Variants\").",
                "properties": {"variant": {"type": "string", "pattern": VARIANT_NAME.pattern}},
            },
        },
    }


GENERATED = {"Operations": generated_operations_schema, "ImageError": generated_image_error_schema}


def json_companion(path):
    """openapi.json beside openapi.yaml: the gateway serves both."""
    return path.with_suffix(".json")


def load_document(path=OPENAPI_FILE):
    with open(path, encoding="utf-8") as stream:
        return yaml.safe_load(stream)


class _Dumper(yaml.SafeDumper):
    """Writes multi-line text (the descriptions) as `|` blocks instead of escaped one-liners."""


def _represent_str(dumper, value):
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def dump_document(document):
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True)


def dump_json_document(document):
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def out_of_date(document):
    """The names of the generated schemas that differ from the code."""
    schemas = document.get("components", {}).get("schemas", {})
    return [name for name, generate in GENERATED.items() if schemas.get(name) != generate()]


def json_out_of_date(document, json_path):
    """Whether openapi.json is missing or says something else than the YAML document."""
    try:
        return json.loads(json_path.read_text(encoding="utf-8")) != document
    except (FileNotFoundError, ValueError):
        return True


def is_up_to_date(document):
    return not out_of_date(document)


def updated_document(document):
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name, generate in GENERATED.items():
        schemas[name] = generate()
    return document


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m imaging.openapi", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is out of date; change nothing")
    parser.add_argument("--file", type=Path, default=OPENAPI_FILE, help="the OpenAPI document (default: %(default)s)")
    args = parser.parse_args(argv)

    document = load_document(args.file)
    json_path = json_companion(args.file)
    if args.check:
        stale = out_of_date(document)
        if stale:
            print(f"{args.file}: components.schemas {', '.join(stale)} out of date; run `python -m imaging.openapi`",
                  file=sys.stderr)
            return 1
        if json_out_of_date(document, json_path):
            print(f"{json_path}: not the same document as {args.file.name}; run `python -m imaging.openapi`",
                  file=sys.stderr)
            return 1
        print(f"{args.file}, {json_path.name}: up to date")
        return 0
    text = dump_document(updated_document(document))
    args.file.write_text(text, encoding="utf-8")
    # Written from the YAML as it now reads back, so that both files say exactly the same.
    json_path.write_text(dump_json_document(load_document(args.file)), encoding="utf-8")
    print(f"{args.file}: components.schemas {', '.join(GENERATED)} regenerated; {json_path.name} written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
