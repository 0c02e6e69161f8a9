"""A multipart upload's file written straight to where it is going while the request is parsed.

werkzeug parses a file part into a SpooledTemporaryFile (memory up to 500 kB, then a temporary file
on disk), which the upload then copied to its staged file: a 3 MB photo was written twice and read
back once, in the event loop (bench.suite_cpu, bench/README.md "Suite CPU per image"). Here the
parser writes the part named `field` into `path` itself; every other part is parsed as werkzeug
always does. The limits stay werkzeug's (the request's `max_content_length`, form memory and parts).
"""
import errno
import os

from werkzeug.formparser import FormDataParser, MultiPartParser

from shared import errors


def parse_with_file_at(request, field, path, max_bytes):
    """Parses `request`'s form, writing the first file part named `field` to `path`; returns the
    files of `field` (werkzeug's FileStorage objects: the first one's stream is `path`, closed).
    A file larger than `max_bytes` is 413 `too_large`, a full disk 507, as when it was copied. A
    body werkzeug cannot parse (cut short, no closing boundary) reads as no form at all, as it
    always did: no files, whatever was written to `path` (the caller's staging removes it)."""
    destination = _Destination(field, path)

    def make_parser():
        return _DirectFormDataParser(
            destination,
            stream_factory=request._get_file_stream,
            max_form_memory_size=request.max_form_memory_size,
            max_content_length=request.max_content_length,
            max_form_parts=request.max_form_parts,
            cls=request.parameter_storage_class,
        )

    # werkzeug asks the request for its parser when the form is first read (Request._load_form_data).
    request.make_form_data_parser = make_parser
    try:
        files = request.files.getlist(field)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise errors.InsufficientStorage() from exc
        raise
    finally:
        del request.make_form_data_parser
        if destination.file is not None:
            destination.file.close()  # written (or abandoned): whoever reads it next opens the path
    if files and files[0].stream is destination.file and os.path.getsize(path) > max_bytes:
        raise errors.TooLarge(f"The file is larger than {max_bytes} bytes", {"max_bytes": max_bytes})
    return files


class _Destination:
    """Where the first file part named `field` goes; `file` once the parser opened it."""

    def __init__(self, field, path):
        self.field = field
        self.path = path
        self.file = None


class _DirectFormDataParser(FormDataParser):
    def __init__(self, destination, **options):
        super().__init__(**options)
        self.destination = destination

    def _parse_multipart(self, stream, mimetype, content_length, options):
        parser = _DirectMultiPartParser(
            self.destination,
            stream_factory=self.stream_factory,
            max_form_memory_size=self.max_form_memory_size,
            max_form_parts=self.max_form_parts,
            cls=self.cls,
        )
        boundary = options.get("boundary", "").encode("ascii")
        if not boundary:
            raise ValueError("Missing boundary")
        form, files = parser.parse(stream, boundary, content_length)
        return stream, form, files


class _DirectMultiPartParser(MultiPartParser):
    def __init__(self, destination, **options):
        super().__init__(**options)
        self.destination = destination

    def start_file_streaming(self, event, total_content_length):
        destination = self.destination
        if event.name != destination.field or destination.file is not None:  # the first part of that name only
            return super().start_file_streaming(event, total_content_length)
        destination.file = open(destination.path, "w+b")  # werkzeug seeks back to the start once the part is complete
        return destination.file
