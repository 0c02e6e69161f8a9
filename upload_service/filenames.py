"""The client's file name, kept for display and downloads only: never a path of the store."""
from pathlib import Path

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
