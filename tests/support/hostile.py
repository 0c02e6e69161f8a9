"""Helpers for the hostile-input and contract-fuzzing end-to-end tests: the error-envelope check,
a raw HTTP/1.1 client for requests that `requests` refuses to send, and small corpus utilities."""
import io
import json
import re
import socket
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from PIL import Image

ERROR_CODE = re.compile(r"^[a-z][a-z0-9_]*$")
# A header line as it must look on the wire: a token, a colon, then visible ASCII, space or tab.
HEADER_LINE = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[\t\x20-\x7e]*$")
# Whatever a file name is sent as, the stored one never holds these.
UNSAFE_IN_FILENAME = re.compile(r"[\x00-\x1f\x7f-\x9f/\\\u2028\u2029]")


def assert_error_envelope(response, status=None, code=None):
    """The contract's JSON error envelope, never a 5xx (unless `status` says so), never HTML.

    `status` and `code` may be a value or a collection of allowed values. Works for a
    `requests.Response` and for a `RawResponse` from `raw_http`. Returns the parsed body."""
    status_code = response.status_code if hasattr(response, "status_code") else response.status
    text = response.text
    statuses = _as_set(status)
    if statuses:
        assert status_code in statuses, f"status {status_code} not in {sorted(statuses)}: {text[:500]}"
    else:
        assert 400 <= status_code < 500, f"expected a 4xx, got {status_code}: {text[:500]}"
    content_type = response.headers.get("Content-Type", "")
    assert content_type.split(";")[0].strip() == "application/json", f"not JSON ({content_type!r}): {text[:500]}"
    assert "<html" not in text.lower() and "traceback" not in text.lower(), text[:500]
    body = json.loads(text)
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error, dict) and {"code", "message", "details"} <= set(error), body
    assert isinstance(error["code"], str) and ERROR_CODE.match(error["code"]), body
    assert isinstance(error["message"], str) and error["message"], body
    assert isinstance(error["details"], dict), body
    codes = _as_set(code)
    if codes:
        assert error["code"] in codes, f"code {error['code']!r} not in {sorted(codes)}: {body}"
    return body


def _as_set(value):
    if value is None:
        return set()
    if isinstance(value, (set, frozenset, list, tuple)):
        return set(value)
    return {value}


# -- accounts -----------------------------------------------------------------------------------


# -- raw HTTP -----------------------------------------------------------------------------------


@dataclass
class RawResponse:
    status: int
    reason: bytes
    header_lines: list  # the raw header lines, bytes, without their CRLF
    body: bytes
    headers: dict = field(default_factory=dict)  # lower-cased name -> last value (str), for convenience

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.body)


class _CaseInsensitive(dict):
    def get(self, key, default=None):
        return super().get(key.lower(), default)

    def __getitem__(self, key):
        return super().__getitem__(key.lower())

    def __contains__(self, key):
        return super().__contains__(key.lower())


def parse_responses(data):
    """Every complete HTTP/1.1 response in `data` (a server may send several on one connection)."""
    responses = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            break
        lines = head.split(b"\r\n")
        match = re.match(rb"^HTTP/1\.[01] (\d{3}) ?(.*)$", lines[0])
        assert match, f"not an HTTP status line: {lines[0]!r}"
        headers = _CaseInsensitive()
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.decode("latin-1").strip().lower()] = value.decode("latin-1").strip()
        length = int(headers.get("content-length", "0") or 0)
        body, data = rest[:length], rest[length:]
        responses.append(RawResponse(int(match.group(1)), match.group(2), lines[1:], body, headers))
    return responses


def gateway_address(base_url):
    parts = urlsplit(base_url)
    return parts.hostname, parts.port


def raw_http(base_url, payload, timeout=10.0, shutdown_write=False):
    """Sends raw bytes, reads until the server closes or `timeout` passes.

    Returns (responses, closed, elapsed): the parsed responses, whether the server closed the
    connection (False: it was still open when the timeout ran out), and the seconds it took."""
    started = time.monotonic()
    with socket.create_connection(gateway_address(base_url), timeout=timeout) as sock:
        sock.sendall(payload)
        if shutdown_write:
            sock.shutdown(socket.SHUT_WR)
        data, closed = b"", False
        deadline = started + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            sock.settimeout(remaining)
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            data += chunk
    return parse_responses(data), closed, time.monotonic() - started


def assert_clean_header_block(response):
    """No header line of a raw response carries a CR, an LF, a non-ASCII byte or an injected header."""
    for line in response.header_lines:
        assert HEADER_LINE.match(line), f"unsafe response header line: {line!r}"
        assert not line.lower().startswith(b"x-injected"), f"injected header: {line!r}"


def multipart(fields, boundary=None):
    """A multipart/form-data body from (name, filename-or-None, content-type-or-None, bytes) tuples,
    written byte for byte as given: no escaping of names, so hostile names reach the server as is.
    A `name` may also be the raw Content-Disposition parameters (bytes) after `form-data; `."""
    boundary = boundary or uuid.uuid4().hex
    out = io.BytesIO()
    for name, filename, content_type, content in fields:
        out.write(b"--" + boundary.encode() + b"\r\n")
        if isinstance(name, bytes):
            disposition = b"form-data; " + name
        else:
            disposition = b'form-data; name="' + name.encode() + b'"'
            if filename is not None:
                filename = filename if isinstance(filename, bytes) else filename.encode("utf-8")
                disposition += b'; filename="' + filename + b'"'
        out.write(b"Content-Disposition: " + disposition + b"\r\n")
        if content_type:
            out.write(b"Content-Type: " + content_type.encode() + b"\r\n")
        out.write(b"\r\n" + content + b"\r\n")
    out.write(b"--" + boundary.encode() + b"--\r\n")
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def http_request(method, path, headers, body=b"", host="gateway"):
    """The bytes of one HTTP/1.1 request with an exact Content-Length (unless headers set one).
    `headers` is a dict, or a list of (name, value) pairs when a name must repeat."""
    items = list(headers.items()) if isinstance(headers, dict) else list(headers)  # pairs: names may repeat
    lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: " + host.encode()]
    names = {name.lower() for name, _ in items}
    for name, value in items:
        lines.append(name.encode() + b": " + (value if isinstance(value, bytes) else value.encode("latin-1")))
    if body and "content-length" not in names and "transfer-encoding" not in names:
        lines.append(b"Content-Length: " + str(len(body)).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def small_image(fmt="PNG", size=(16, 16), color=(200, 30, 30)):
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, fmt)
    return buffer.getvalue()
