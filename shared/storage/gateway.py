"""How the gateway reaches an s3:// store for downloads (nginx.conf /_objects/, gateway/objects.js),
worked out once here from the same settings the services read, for scripts/render-nginx-conf.

    object_store_route(config) -> (scheme, upstream "host:port", signed Host, path prefix)

A store of one's own (AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL set) is addressed path-style, as
boto3 does here: http://endpoint/<bucket>/<key>. AWS's own S3 virtual-hosted style:
https://<bucket>.s3.<region>.amazonaws.com/<key>. With file:// the route is a placeholder that
no request takes.

`python -m shared.storage.gateway` prints both as shell assignments, for a gateway container
that has no venv (deploy/kubernetes/gateway.yaml works them out in an init container of the app
image and hands them to scripts/render-nginx-conf).
"""
import os
from urllib.parse import urlsplit

from shared.settings import setting
from shared.storage.location import BucketLocation, parse_storage_url
from shared.storage.s3 import endpoint_url

UNUSED = ("http", "127.0.0.1:9", "127.0.0.1:9", "/")
DEFAULT_PORTS = {"http": 80, "https": 443}


def object_store_route(config):
    location = parse_storage_url(setting(config, "STORAGE_URL"), setting(config, "STORAGE_DIR"))
    if not isinstance(location, BucketLocation):
        return UNUSED
    endpoint = endpoint_url()
    if endpoint:
        parts = urlsplit(endpoint)
        port = parts.port or DEFAULT_PORTS[parts.scheme]
        # The Host boto3 signs: the port only when it is not the scheme's default.
        host = parts.hostname if parts.port in (None, DEFAULT_PORTS[parts.scheme]) else f"{parts.hostname}:{parts.port}"
        return parts.scheme, f"{parts.hostname}:{port}", host, f"/{location.bucket}/"
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    host = f"{location.bucket}.s3.{region}.amazonaws.com"
    return "https", f"{host}:443", host, "/"


def media_location(config):
    """The internal location under which nginx finds an output's file or object (nginx.conf
    /media/): the outputs folder of the file:// store, or the outputs' key prefix in the bucket."""
    location = parse_storage_url(setting(config, "STORAGE_URL"), setting(config, "STORAGE_DIR"))
    if isinstance(location, BucketLocation):
        return f"/_objects/{location.key('outputs/')}"
    return "/_storage/outputs/"


def route_assignments(config):
    """The lines `python -m shared.storage.gateway` prints: NAME=value, shell-quoted."""
    import shlex

    names = ("S3_SCHEME", "S3_UPSTREAM", "S3_HOST", "S3_PATH_PREFIX")
    values = dict(zip(names, object_store_route(config))) | {"MEDIA_LOCATION": media_location(config)}
    return "".join(f"{name}={shlex.quote(value)}\n" for name, value in values.items())


if __name__ == "__main__":
    from shared.config import load_config

    print(route_assignments(load_config()), end="")
