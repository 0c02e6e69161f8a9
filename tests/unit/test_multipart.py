"""shared/multipart.py: the upload's file part written straight to its staged path while the form
is parsed, with the same limits and refusals as the copy it replaces."""
import errno
import io

import pytest
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from shared import errors
from shared.multipart import parse_with_file_at


def request_with(parts):
    return Request(EnvironBuilder(method="POST", path="/api/images/upload", data=parts).get_environ())


def test_the_file_part_is_written_to_the_path_and_the_other_fields_are_parsed_as_usual(tmp_path):
    target = tmp_path / "staged.part"
    request = request_with({"image": (io.BytesIO(b"\xff\xd8 image bytes"), "photo.jpg"),
                            "operations": (io.BytesIO(b'[{"type": "grayscale"}]'), "ops.json")})
    files = parse_with_file_at(request, "image", target, max_bytes=1000)
    assert [each.filename for each in files] == ["photo.jpg"]
    assert target.read_bytes() == b"\xff\xd8 image bytes"
    # A file part of another name is werkzeug's as always, readable from the request.
    assert request.files["operations"].stream.read() == b'[{"type": "grayscale"}]'


def test_only_the_first_part_of_the_name_goes_to_the_path(tmp_path):
    target = tmp_path / "staged.part"
    builder = EnvironBuilder(method="POST", path="/api/images/upload")
    builder.files.add_file("image", io.BytesIO(b"first"), "a.png")
    builder.files.add_file("image", io.BytesIO(b"second"), "b.png")
    files = parse_with_file_at(Request(builder.get_environ()), "image", target, max_bytes=1000)
    assert len(files) == 2  # the caller refuses two files
    assert target.read_bytes() == b"first"
    assert files[1].stream.read() == b"second"


def test_a_file_over_the_limit_is_too_large(tmp_path):
    request = request_with({"image": (io.BytesIO(b"x" * 2000), "big.png")})
    with pytest.raises(errors.TooLarge) as refused:
        parse_with_file_at(request, "image", tmp_path / "staged.part", max_bytes=1000)
    assert refused.value.details == {"max_bytes": 1000}


def test_no_file_part_writes_nothing(tmp_path):
    target = tmp_path / "staged.part"
    assert parse_with_file_at(request_with({"image": "not a file"}), "image", target, max_bytes=1000) == []
    assert not target.exists()


def test_a_full_disk_is_insufficient_storage(tmp_path, monkeypatch):
    import builtins

    real_open = builtins.open

    class FullDisk(io.BytesIO):
        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    def opener(path, mode="r", *args, **kwargs):
        return FullDisk() if str(path).endswith("staged.part") else real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", opener)
    request = request_with({"image": (io.BytesIO(b"x" * 100), "photo.png")})
    with pytest.raises(errors.InsufficientStorage):
        parse_with_file_at(request, "image", tmp_path / "staged.part", max_bytes=1000)


def test_a_photo_sized_file_arrives_whole(tmp_path):
    """Several megabytes, far above werkzeug's form memory limit (500 kB), which applies to fields only."""
    content = bytes(range(256)) * (3_500_000 // 256)
    target = tmp_path / "staged.part"
    request = request_with({"image": (io.BytesIO(content), "photo.jpg"), "operations": "[]"})
    parse_with_file_at(request, "image", target, max_bytes=10_000_000)
    assert target.read_bytes() == content
    assert request.form["operations"] == "[]"


@pytest.mark.parametrize("cut", [0.5, 0.9, 1.0])
def test_a_body_cut_short_or_unterminated_has_no_file(tmp_path, cut):
    """werkzeug reads a multipart body it cannot parse as no form at all; the caller then answers
    400 (no file), as before, never a 500 (tests/e2e/test_hostile_input.py)."""
    body = b'--x\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n\r\n' + b"\xff\xd8" + b"y" * 200_000
    body = body[: int(len(body) * cut)]
    environ = EnvironBuilder(method="POST", path="/api/images/upload", data=body,
                             content_type="multipart/form-data; boundary=x").get_environ()
    assert parse_with_file_at(Request(environ), "image", tmp_path / "staged.part", max_bytes=10_000_000) == []
