"""The client's file name, kept for display and downloads only: never a path of the store."""
import re
import unicodedata
from pathlib import Path
from urllib.parse import quote

MAX_FILENAME_LENGTH = 200


def safe_filename(name, fallback="image"):
    """The client's file name, reduced to something safe to store and to echo in headers."""
    name = Path(str(name or "").replace("\\", "/")).name
    name = "".join(ch for ch in name if ch.isprintable() and ch not in '"<>|:*?/\\').strip(" .")
    if len(name) > MAX_FILENAME_LENGTH:
        stem, dot, extension = name.rpartition(".")
        keep = extension if dot and len(extension) <= 10 else ""
        name = name[: MAX_FILENAME_LENGTH - len(keep) - 1].rstrip(" .") + ("." + keep if keep else "")
    return name or fallback


def ascii_fallback(filename, fallback_stem="image"):
    """A readable ASCII version of `filename` for the plain `filename=` parameter, which old
    clients show as is: accents dropped ("résumé" -> "resume"), other letters replaced by "_".
    A stem left without a letter or digit (every character of "名前" was replaced) becomes
    `fallback_stem`: never a hidden-file name like ".png", never only underscores."""
    stem, dot, extension = filename.rpartition(".")
    if not dot:
        stem, extension = filename, ""
    decomposed = unicodedata.normalize("NFKD", stem)
    stem = "".join(
        ch if ch.isascii() and ch.isprintable() and ch not in '"\\' else "_"
        for ch in decomposed
        if not unicodedata.combining(ch)
    )
    stem = re.sub(r"_{2,}", "_", stem).strip(" ._")
    if not any(ch.isalnum() for ch in stem):
        stem = fallback_stem
    extension = "".join(ch for ch in extension if ch.isascii() and ch.isalnum())
    return f"{stem}.{extension}" if extension else stem


def content_disposition(filename, disposition="attachment"):
    """RFC 6266: a readable ASCII `filename` for old clients and the exact name as `filename*`
    (RFC 5987), which every current browser prefers."""
    return f"{disposition}; filename=\"{ascii_fallback(filename)}\"; filename*=UTF-8''{quote(filename, safe='')}"


def download_name(original_filename, output_format):
    """The name an output is downloaded as: the original's stem with the output's extension."""
    from imaging.formats import EXTENSIONS

    stem = original_filename.rsplit(".", 1)[0] or "image"
    return f"{stem}.{EXTENSIONS[output_format]}"
