"""openapi.yaml: a valid OpenAPI 3.1 document that matches the code it describes."""
import copy
import json
import re

import pytest
import yaml
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_openapi

from notification_service.service import NotificationService
from process_service.service import ProcessService
from imaging import openapi
from shared.http import MAPPED_ERRORS, WERKZEUG_CODES, HttpEntrypoint
from upload_service.service import UploadService
from user_service.service import UserService

SERVICES = (UserService, UploadService, ProcessService, NotificationService)
# Each service's own health and metrics routes (not routed by the gateway); the gateway documents
# its /healthz (gathered from the services' own, gateway/health.js).
SERVICE_ONLY_PATHS = {"/healthz", "/metrics"}
# Answered by nginx itself, not by a service.
GATEWAY_ONLY_PATHS = {"/healthz", "/healthz/gateway", "/api/openapi.yaml", "/api/openapi.json", "/media/{object}/{filename}"}
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


@pytest.fixture(scope="module")
def document():
    return openapi.load_document()


def http_routes():
    """(METHOD, OpenAPI path) of every @http entrypoint of the four services."""
    routes = set()
    for service in SERVICES:
        for name in dir(service):
            for entrypoint in getattr(getattr(service, name), "nameko_entrypoints", set()):
                if isinstance(entrypoint, HttpEntrypoint) and entrypoint.url not in SERVICE_ONLY_PATHS:
                    # werkzeug's <image_id> or <converter:image_id> is OpenAPI's {image_id}
                    path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", entrypoint.url)
                    routes.add((entrypoint.method.upper(), path))
    return routes


def documented_routes(document):
    return {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in METHODS
    }


def follow(document, node):
    """The object a `$ref` (local, possibly chained) points to; the node itself otherwise."""
    while isinstance(node, dict) and "$ref" in node:
        target = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def operations(document):
    for path, item in document["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def documented_errors(document):
    """{(status, code)} of the error examples of every operation's responses."""
    found = set()
    for _, _, operation in operations(document):
        for status, response in operation["responses"].items():
            media = follow(document, response).get("content", {}).get("application/json", {})
            for example in media.get("examples", {}).values():
                value = follow(document, example).get("value")
                if isinstance(value, dict) and isinstance(value.get("error"), dict):
                    found.add((int(status), value["error"]["code"]))
    return found


def media_examples(document):
    """(where, JSON pointer of the schema, example value) of every media type example."""
    def escape(text):
        return text.replace("~", "~0").replace("/", "~1")

    for path, method, operation in operations(document):
        bodies = []
        if "requestBody" in operation:
            bodies.append((f"{method} {path} request", ["requestBody"], follow(document, operation["requestBody"])))
        for status, response in operation["responses"].items():
            bodies.append((f"{method} {path} {status}", ["responses", status], response))
        for where, prefix, body in bodies:
            base = "/".join(["#", "paths", escape(path), method] + [escape(p) for p in prefix])
            if "$ref" in body:
                base, body = body["$ref"], follow(document, body)
            for media_type, media in body.get("content", {}).items():
                for name, example in media.get("examples", {}).items():
                    if "schema" in media and "value" in follow(document, example):
                        pointer = f"{base}/content/{escape(media_type)}/schema"
                        yield f"{where} {media_type} {name}", pointer, follow(document, example)["value"]


def test_document_is_a_valid_openapi_3_1_description(document):
    validate_openapi(document)
    assert document["openapi"] == "3.1.0"
    assert document["info"]["title"] == "Image processing API"
    assert {"url": "http://127.0.0.1:8080"}.items() <= document["servers"][0].items()


def test_bearer_jwt_is_the_default_security(document):
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        **document["components"]["securitySchemes"]["bearerAuth"],
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }
    assert document["security"] == [{"bearerAuth": []}]
    public = {(path, method) for path, method, op in operations(document) if op.get("security") == []}
    assert public == {
        ("/api/users/signup", "post"),
        ("/api/users/login", "post"),
        ("/healthz", "get"),
        ("/healthz/gateway", "get"),
        ("/api/openapi.yaml", "get"),
        ("/api/openapi.json", "get"),
        ("/media/{object}/{filename}", "get"),  # the signature is the credential
    }


def test_operations_component_is_the_generated_schema(document):
    assert document["components"]["schemas"]["Operations"] == openapi.generated_operations_schema()
    assert openapi.is_up_to_date(document)


def test_every_http_route_of_the_services_is_documented(document):
    routes = http_routes()
    assert ("POST", "/api/images/upload") in routes  # the collection itself works
    assert routes - documented_routes(document) == set()


def test_every_documented_api_route_exists(document):
    documented = {route for route in documented_routes(document) if route[1] not in GATEWAY_ONLY_PATHS}
    assert documented - http_routes() == set()


def test_every_contract_error_is_documented_with_its_status(document):
    assert set(MAPPED_ERRORS.values()) - documented_errors(document) == set()


def test_gateway_errors_are_documented_on_every_api_route(document):
    for path, method, operation in operations(document):
        if path.startswith("/api/users/") or (path.startswith("/api/images") and path != "/api/openapi.yaml"):
            expected = {"404", "413", "429", "500", "502", "503", "504"}
            if path != "/api/users/signup" and path != "/api/users/login":
                expected.add("401")
            assert expected <= set(operation["responses"]), f"{method} {path}"


def test_routing_error_codes_are_documented(document):
    codes = {
        follow(document, example)["value"]["error"]["code"]
        for response in document["components"]["responses"].values()
        for example in response["content"]["application/json"].get("examples", {}).values()
    }
    assert set(WERKZEUG_CODES.values()) - codes == set()


def test_examples_match_their_schemas(document):
    examples = list(media_examples(document))
    assert len(examples) > 20
    for where, pointer, value in examples:
        # The document itself is the root schema, so that its local $refs resolve.
        root = {**copy.deepcopy(document), "$ref": pointer}
        errors = [error.message for error in Draft202012Validator(root).iter_errors(value)]
        assert errors == [], where


def test_check_fails_on_a_stale_file_and_the_rewrite_fixes_only_operations(document, tmp_path):
    stale = copy.deepcopy(document)
    stale["components"]["schemas"]["Operations"] = {"type": "array", "description": "placeholder"}
    target = tmp_path / "openapi.yaml"
    target.write_text(openapi.dump_document(stale), encoding="utf-8")

    assert openapi.main(["--check", "--file", str(target)]) == 1
    assert openapi.main(["--file", str(target)]) == 0
    assert openapi.main(["--check", "--file", str(target)]) == 0
    assert yaml.safe_load(target.read_text(encoding="utf-8")) == document
    assert json.loads((tmp_path / "openapi.json").read_text(encoding="utf-8")) == document


def test_check_fails_when_the_json_document_differs_from_the_yaml(document, tmp_path):
    """openapi.json is what the web console reads: it must say what openapi.yaml says."""
    target = tmp_path / "openapi.yaml"
    target.write_text(openapi.dump_document(document), encoding="utf-8")
    assert openapi.main(["--check", "--file", str(target)]) == 1  # no openapi.json yet

    (tmp_path / "openapi.json").write_text(openapi.dump_json_document({**document, "openapi": "3.0.0"}))
    assert openapi.main(["--check", "--file", str(target)]) == 1

    (tmp_path / "openapi.json").write_text(openapi.dump_json_document(document))
    assert openapi.main(["--check", "--file", str(target)]) == 0


def test_the_committed_file_is_up_to_date():
    assert openapi.main(["--check"]) == 0


def test_variants_are_documented_as_the_code_answers_them(document):
    from imaging.validation import VARIANT_NAME
    from upload_service.models import COMPLETED, FAILED
    from upload_service.schemas import image_to_dict
    import datetime as dt
    import types
    import uuid

    schemas = document["components"]["schemas"]
    assert schemas["UploadForm"]["properties"]["variants"]["propertyNames"]["pattern"] == VARIANT_NAME.pattern
    download = document["paths"]["/api/images/{image_id}/download"]["get"]
    assert any(p.get("name") == "variant" and p.get("in") == "query" for p in download["parameters"])
    now = dt.datetime(2026, 12, 6, tzinfo=dt.timezone.utc)
    output = {"width": 8, "height": 6, "format": "webp", "size_bytes": 10, "path": "outputs/x.small.webp"}
    row = types.SimpleNamespace(
        id=uuid.uuid4(), status=COMPLETED, original_filename="a.png", operations=[], created_at=now, updated_at=now,
        width=8, height=6, format="png", size_bytes=20, output_width=8, output_height=6, output_format="webp",
        output_size_bytes=10, output_path=output["path"], variant_outputs={"small": output, "thumb": output},
        error_code=None, error_message=None, error_details=None,
    )
    failed = types.SimpleNamespace(**{**vars(row), "status": FAILED, "error_code": "invalid_crop",
                                      "error_message": "outside", "error_details": {"variant": "thumb"}})
    root = {**copy.deepcopy(document), "$ref": "#/components/schemas/Image"}
    for image in (row, failed):
        body = image_to_dict(image)
        assert [e.message for e in Draft202012Validator(root).iter_errors(body)] == []
    assert list(image_to_dict(row)["variants"]) == ["small", "thumb"]
    assert "path" not in image_to_dict(row)["variants"]["small"]
    assert image_to_dict(failed)["error"]["details"] == {"variant": "thumb"}
