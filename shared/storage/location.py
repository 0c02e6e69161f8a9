"""`STORAGE_URL`: where image bytes live (contract, "Running it").

    file:///var/lib/imageproc/storage    a folder (the default: STORAGE_DIR as a file:// URL)
    s3://images                          a bucket of any S3-compatible store
    s3://images/prod/eu                  a prefix in it: keys are prod/eu/originals/<id>, ...

The store's endpoint, region and credentials are not part of the URL: boto3 reads them the way
every AWS SDK does (AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, or a profile or an instance role), so one set of variables serves the
services, the aws CLI and anything else pointed at the same bucket.
"""
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from shared.config import resolve_path

# Bucket names as S3 defines them; a prefix of plain path characters only, because the gateway puts
# keys into request paths as they are (gateway/objects.js) and they must need no escaping.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_PREFIX = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")


class InvalidStorageUrl(ValueError):
    pass


@dataclass(frozen=True)
class FolderLocation:
    root: Path

    @property
    def url(self):
        return self.root.as_uri()


@dataclass(frozen=True)
class BucketLocation:
    bucket: str
    prefix: str = ""  # without slashes at either end

    @property
    def url(self):
        return f"s3://{self.bucket}" + (f"/{self.prefix}" if self.prefix else "")

    def key(self, relative):
        """The object key of a stored name such as `originals/<id>`."""
        return f"{self.prefix}/{relative}" if self.prefix else relative

    def relative(self, key):
        """The stored name of an object key under the prefix (the inverse of `key`)."""
        return key[len(self.prefix) + 1:] if self.prefix else key


def parse_storage_url(url, storage_dir):
    """The location `url` names; an empty `url` is the folder `storage_dir`."""
    if not url:
        return FolderLocation(resolve_path(storage_dir))
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise InvalidStorageUrl(f"STORAGE_URL {url!r}: a file:// URL names an absolute path (file:///srv/images)")
        return FolderLocation(Path(parts.path))
    if parts.scheme == "s3":
        prefix = parts.path.strip("/")
        if not _BUCKET.match(parts.netloc):
            raise InvalidStorageUrl(f"STORAGE_URL {url!r}: {parts.netloc!r} is not a valid bucket name")
        if prefix and not _PREFIX.match(prefix):
            raise InvalidStorageUrl(f"STORAGE_URL {url!r}: the prefix may hold letters, digits, '.', '_', '-' and '/' only")
        if parts.query or parts.fragment:
            raise InvalidStorageUrl(f"STORAGE_URL {url!r}: the endpoint and credentials are set by AWS_* variables, not in the URL")
        return BucketLocation(parts.netloc, prefix)
    raise InvalidStorageUrl(f"STORAGE_URL {url!r}: use file:///absolute/path or s3://bucket[/prefix]")
