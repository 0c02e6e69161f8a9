"""The object store (`s3://bucket[/prefix]`): any S3-compatible server, through boto3.

Endpoint, region and credentials come from the environment the way every AWS SDK reads them
(shared/storage/location.py). The client is made once per process and shared by its workers
(boto3 clients are thread-safe): standard retry mode (3 attempts with backoff), a bounded
connection pool, connect and read timeouts, so an unreachable store costs a request seconds, not
a hang; what still fails is `shared.storage.base.unavailable`: a JSON 503, or a retry later.

Under eventlet the sockets boto3 opens are green (the services are monkey-patched before anything
imports socket), so a transfer waits without holding the event loop. The CPU it spends is kept
small: payload signing is off (the body is protected by its checksum instead, CRC32 per request
or part, which zlib computes at GB/s), so no SHA-256 of a 20 MB body runs on the loop.

Large files go up in 8 MiB parts (multipart upload, each part with its checksum); an upload that
dies half-way leaves an incomplete multipart upload, which `listing` reports as partial and the
sweeper aborts, as it removes a `.part` file in the folder store.
"""
import contextlib
import logging
import os

import boto3
import boto3.exceptions
import botocore.exceptions
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from shared.storage.base import COPY_CHUNK, FOLDERS, ObjectMissing, Staged, StoredObject, unavailable

log = logging.getLogger(__name__)

MULTIPART_BYTES = 8 * 1024 * 1024
_MISSING_CODES = {"404", "NoSuchKey", "NotFound"}
# What says "not now" rather than "never": the server's own overload and internal errors.
# A GET's body that broke off (dropped connection, timeout, short body): worth reading again.
_STREAM_ERRORS = (
    botocore.exceptions.ResponseStreamingError,
    botocore.exceptions.ReadTimeoutError,
    botocore.exceptions.IncompleteReadError,
)
_TRANSIENT_CODES = {"500", "502", "503", "504", "InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout"}


def endpoint_url():
    """The store's endpoint as the AWS SDKs choose it (empty: AWS's own S3)."""
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def client_config(max_connections, timeout_seconds):
    return Config(
        retries={"mode": "standard", "max_attempts": 3},
        max_pool_connections=max_connections,
        connect_timeout=min(timeout_seconds, 3),
        read_timeout=timeout_seconds,
        # Path-style for a store of one's own (SeaweedFS, MinIO, Garage: no wildcard DNS needed);
        # AWS picks virtual-hosted style by itself.
        s3={"addressing_style": "path" if endpoint_url() else "auto", "payload_signing_enabled": False},
        request_checksum_calculation="when_supported",
        response_checksum_validation="when_supported",
    )


class BucketStore:
    kind = "s3"

    def __init__(self, location, spool, max_connections=20, timeout_seconds=10):
        self.location = location
        self.bucket = location.bucket
        self.url = location.url
        self.spool = spool
        self.endpoint = endpoint_url()
        self.client = boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint, config=client_config(max_connections, timeout_seconds)
        )
        self.transfer = TransferConfig(
            multipart_threshold=MULTIPART_BYTES, multipart_chunksize=MULTIPART_BYTES, use_threads=False
        )

    def describe(self):
        return f"{self.url} at {self.endpoint or 'AWS S3'}"

    @contextlib.contextmanager
    def _calls(self, name=None):
        """boto3's errors as the suite's: missing, or the store unavailable (503 / retry later)."""
        try:
            yield
        except botocore.exceptions.ClientError as exc:
            self._raise_client_error(exc, exc, name)
        except boto3.exceptions.S3UploadFailedError as exc:
            # upload_file wraps the ClientError of its last attempt (as the exception's context):
            # a store answering 500 while it restarts is as transient here as anywhere else.
            cause = exc.__context__
            if isinstance(cause, botocore.exceptions.ClientError):
                self._raise_client_error(cause, exc, name)
            raise
        except (botocore.exceptions.BotoCoreError, boto3.exceptions.RetriesExceededError) as exc:
            # No connection, a timeout, a dropped connection, missing credentials, a download
            # whose retries ran out: after the client's own retries, the store is down for now.
            raise unavailable(self, exc) from exc

    def _raise_client_error(self, client_error, raised, name):
        code = str(client_error.response.get("Error", {}).get("Code", ""))
        if name is not None and code in _MISSING_CODES:
            raise ObjectMissing(name) from raised
        if code in _TRANSIENT_CODES:
            raise unavailable(self, raised) from raised
        raise raised

    def ensure_bucket(self):
        """Creates the bucket when it is not there (a store of one's own, the tests)."""
        with self._calls():
            try:
                self.client.head_bucket(Bucket=self.bucket)
            except botocore.exceptions.ClientError as exc:
                if str(exc.response.get("Error", {}).get("Code")) not in _MISSING_CODES | {"NoSuchBucket"}:
                    raise
                self.client.create_bucket(Bucket=self.bucket)

    @contextlib.contextmanager
    def staged(self, name):
        """A local spool path to write `name` to; `commit()` uploads it. Removed either way."""
        with self.spool.file() as path:
            yield Staged(path, lambda content_type=None: self.put_file(path, name, content_type))

    def put_file(self, local_path, name, content_type=None):
        """Uploads the local file as `name` (multipart when large), then removes the local file."""
        extra = {"ChecksumAlgorithm": "CRC32"}
        if content_type:
            extra["ContentType"] = content_type
        try:
            with self._calls():
                self.client.upload_file(
                    str(local_path), self.bucket, self.location.key(name), ExtraArgs=extra, Config=self.transfer
                )
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(local_path)

    @contextlib.contextmanager
    def fetched(self, name):
        """A local spool file holding `name`'s bytes for the block."""
        with self.spool.file() as path:
            with self._calls(name):
                self._download(self.location.key(name), path)
            yield path

    def _download(self, key, path, attempts=3):
        """One GET, its body streamed to `path` in 1 MiB chunks (never whole in memory), its
        checksum checked by botocore as it is read. Not s3transfer's download_file: that asks
        HEAD for the size before every GET, a round trip more to the store for each fetch (the
        benchmark: 10 ms of a 3.4 MB original's 22). A body cut off half-way is read again from
        the start, as download_file would; what still fails is the store unavailable."""
        for attempt in range(1, attempts + 1):
            answer = self.client.get_object(Bucket=self.bucket, Key=key)
            try:
                with contextlib.closing(answer["Body"]) as body, open(path, "wb") as out:
                    for chunk in body.iter_chunks(COPY_CHUNK):
                        out.write(chunk)
                return
            except _STREAM_ERRORS:
                if attempt == attempts:
                    raise
                log.info("the store's answer broke off; reading it again", extra={"attempt": attempt})

    def remove(self, *names):
        keys = [{"Key": self.location.key(name)} for name in names if name]
        for start in range(0, len(keys), 1000):
            with self._calls():
                answer = self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": keys[start:start + 1000], "Quiet": True}
                )
            if answer.get("Errors"):
                log.warning("the store kept %d object(s) it was asked to delete", len(answer["Errors"]),
                            extra={"errors": answer["Errors"][:10]})

    def remove_partials(self, image_id):
        """Aborts what a dead writer left unfinished for `image_id` (incomplete multipart uploads)."""
        for folder in FOLDERS:
            for stored in self._incomplete_uploads(f"{folder}/{image_id}"):
                self.remove_listed(stored)

    def listing(self, folder):
        paginator = self.client.get_paginator("list_objects_v2")
        with self._calls():
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.location.key(f"{folder}/")):
                for item in page.get("Contents", ()):
                    yield StoredObject(self.location.relative(item["Key"]), item["LastModified"].timestamp())
        yield from self._incomplete_uploads(f"{folder}/")

    def _incomplete_uploads(self, name_prefix):
        paginator = self.client.get_paginator("list_multipart_uploads")
        with self._calls():
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.location.key(name_prefix)):
                for upload in page.get("Uploads", ()):
                    yield StoredObject(self.location.relative(upload["Key"]), upload["Initiated"].timestamp(),
                                       partial=True, upload_id=upload["UploadId"])

    def remove_listed(self, stored):
        key = self.location.key(stored.name)
        with self._calls():
            if stored.upload_id:
                with contextlib.suppress(botocore.exceptions.ClientError):  # finished or aborted meanwhile
                    self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=stored.upload_id)
            else:
                self.client.delete_object(Bucket=self.bucket, Key=key)

    def gateway_location(self, name):
        """Where nginx fetches `name` from (X-Accel-Redirect): nginx.conf /_objects/, which signs
        the request with the gateway's read-only key (gateway/objects.js)."""
        return f"/_objects/{self.location.key(name)}"

    def check(self):
        with self._calls():
            self.client.head_bucket(Bucket=self.bucket)
