"""The three emails of the contract, each a plain-text part with an HTML alternative.

User input (names, file names) never reaches a header as raw text: names enter the `To` display name
through `email.headerregistry.Address`, which quotes and encodes them (`email.utils.formataddr` is not
used on purpose: a non-ASCII name like "Zoë, Mallory <m@evil.com>" comes out as an unquoted encoded
word that the header parser then reads as a second recipient). Control and format characters (CR, LF,
bidi overrides) are removed from everything a user typed, and every value in the HTML is escaped.

Message-IDs are derived from the event (`<welcome.{user_id}@domain>`), so a redelivered event makes
the same message and a duplicate is recognisable downstream.
"""
import datetime as dt
import html
import re
import unicodedata
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from string import Template

from shared.settings import SETTINGS


DEFAULT_MAIL_FROM = SETTINGS["MAIL_FROM"].default
DEFAULT_PRODUCT_NAME = "Image Service"

WELCOME = "welcome"
IMAGE_READY = "image-ready"
IMAGE_FAILED = "image-failed"

# Unicode categories that have no place in a name or a subject: controls (CR, LF, ...), format
# characters (bidi overrides that reverse "gpj.exe"), surrogates, line and paragraph separators.
_UNPRINTABLE = {"Cc", "Cf", "Cs", "Zl", "Zp"}
_ID_TOKEN = re.compile(r"^[A-Za-z0-9-]{1,64}$")


def clean_text(value, max_length=100):
    """User text made safe for a header or a line of a body: unprintables become spaces, runs of
    whitespace one space, and the result is cut to `max_length` characters."""
    text = "".join(" " if unicodedata.category(char) in _UNPRINTABLE else char for char in str(value or ""))
    text = " ".join(text.split())
    return text if len(text) <= max_length else text[: max_length - 1].rstrip() + "…"


def mail_domain(mail_from):
    address = parseaddr(mail_from or "")[1]
    domain = address.rpartition("@")[2]
    return domain if re.fullmatch(r"[A-Za-z0-9.-]+", domain or "") else "localhost"


def message_id(kind, entity_id, mail_from):
    """`<kind.entity_id@domain>` for an id that is a plain token (a UUID), else a random one."""
    domain = mail_domain(mail_from)
    entity_id = str(entity_id or "")
    if _ID_TOKEN.match(entity_id):
        return f"<{kind}.{entity_id}@{domain}>"
    return make_msgid(idstring=kind, domain=domain)


def message_kind(message):
    """The kind a message was built as (`welcome`, ...), read back from its Message-ID."""
    local_part = str(message.get("Message-ID", "")).strip("<> ").partition("@")[0]
    kind = local_part.partition(".")[0]
    return kind if kind in (WELCOME, IMAGE_READY, IMAGE_FAILED) else "other"


def product_name(mail_from):
    return clean_text(parseaddr(mail_from or "")[0]) or DEFAULT_PRODUCT_NAME


def recipient(name, address):
    """The `To` value: the display name cleaned (or left out if nothing printable remains).
    Raises ValueError for anything but exactly one valid address."""
    address = str(address or "").strip()
    if not address:
        raise ValueError("no address")
    parsed = Address(addr_spec=address)  # raises ValueError (or a defect, also ValueError) when malformed
    return Address(display_name=clean_text(name), username=parsed.username, domain=parsed.domain)


def variants_line(names):
    """"Variants: thumb, big." for an upload that asked for more than its one `default` output."""
    names = [clean_text(name, 32) for name in names or () if isinstance(name, str)]
    if not names or names == ["default"]:
        return ""
    return f"Variants: {', '.join(names)}."


def human_size(size_bytes):
    size = float(size_bytes or 0)
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{int(size)} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"  # pragma: no cover - the loop always returns


def _build(kind, entity_id, to, subject, text, html_body, mail_from, now=None):
    message = EmailMessage(policy=policy.SMTP)
    message["Message-ID"] = message_id(kind, entity_id, mail_from)
    message["Date"] = format_datetime(now or dt.datetime.now(dt.timezone.utc))
    message["From"] = mail_from or DEFAULT_MAIL_FROM
    message["To"] = to
    message["Subject"] = clean_text(subject, max_length=150)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: auto-responders must not answer
    message.set_content(text)
    message.add_alternative(html_body, subtype="html")
    return message


def _html(content_template, values):
    """The HTML part: every value escaped, whatever it is."""
    escaped = {key: html.escape(str(value), quote=True) for key, value in values.items()}
    return HTML_PAGE.substitute(content=content_template.substitute(**escaped), product=escaped["product"])


HTML_PAGE = Template("""\
<!DOCTYPE html>
<html>
<body style="font-family: sans-serif; line-height: 1.5">
$content
<p style="color: #666">$product</p>
</body>
</html>
""")

WELCOME_TEXT = Template("""\
Hello $name,

welcome to $product! Your account is ready: sign in with $email to upload and process images.

$product
""")

WELCOME_HTML = Template("""\
<p>Hello $name,</p>
<p>welcome to $product! Your account is ready: sign in with <strong>$email</strong> to upload
and process images.</p>""")

READY_TEXT = Template("""\
Hello $name,

your image "$filename" is ready: $width x $height pixels, $format, $size.
$variants_line
Open it in your browser (this link works for $link_days days, no sign-in needed):
$download_url

$product
""")

READY_HTML = Template("""\
<p>Hello $name,</p>
<p>your image <strong>$filename</strong> is ready: $width &times; $height pixels, $format, $size.$variants_html</p>
<p><a href="$download_url">Open it</a> (this link works for $link_days days, no sign-in needed).</p>""")

FAILED_TEXT = Template("""\
Hello $name,

your image "$filename" could not be processed.

Reason: $message ($code)

$product
""")

FAILED_HTML = Template("""\
<p>Hello $name,</p>
<p>your image <strong>$filename</strong> could not be processed.</p>
<p>Reason: $message (<code>$code</code>)</p>""")


def welcome(user, mail_from=DEFAULT_MAIL_FROM, now=None):
    """`user`: {"id", "name", "email"} as user_service sends them."""
    to = recipient(user.get("name"), user["email"])
    product = product_name(mail_from)
    values = {"name": clean_text(user.get("name")) or "there", "email": to.addr_spec, "product": product}
    return _build(
        WELCOME, user.get("id"), to, f"Welcome to {product}",
        WELCOME_TEXT.substitute(**values), _html(WELCOME_HTML, values), mail_from, now,
    )


def image_ready(user, image, download_url, mail_from=DEFAULT_MAIL_FROM, now=None, link_days=7):
    """`image`: the `image_completed` event ({"image_id", "original_filename", "output": {...}},
    and `variants`, the names of its outputs, from uploads since variants); `download_url`:
    absolute http(s) URL of the output, a signed one (`link_days` valid)."""
    if not re.match(r"^https?://", download_url or ""):
        raise ValueError("download_url must be an absolute http(s) URL")
    to = recipient(user.get("name"), user["email"])
    output = image.get("output") or {}
    filename = clean_text(image.get("original_filename"), max_length=80) or "image"
    values = {
        "name": clean_text(user.get("name")) or "there",
        "filename": filename,
        "width": clean_text(output.get("width"), 10),
        "height": clean_text(output.get("height"), 10),
        "format": clean_text(output.get("format"), 10).upper(),
        "size": human_size(output.get("size_bytes")),
        "download_url": download_url,
        "link_days": int(link_days),
        "product": product_name(mail_from),
    }
    names = variants_line(image.get("variants"))
    text_values = {**values, "variants_line": f"{names}\n" if names else ""}
    html_values = {**values, "variants_html": f" {names}" if names else ""}
    return _build(
        IMAGE_READY, image.get("image_id"), to, f'Your image "{clean_text(filename, 60)}" is ready',
        READY_TEXT.substitute(**text_values), _html(READY_HTML, html_values), mail_from, now,
    )


def image_failed(user, image, mail_from=DEFAULT_MAIL_FROM, now=None):
    """`image`: the `image_failed` event ({"image_id", "original_filename", "error": {"code", "message"}})."""
    to = recipient(user.get("name"), user["email"])
    error = image.get("error") or {}
    filename = clean_text(image.get("original_filename"), max_length=80) or "image"
    values = {
        "name": clean_text(user.get("name")) or "there",
        "filename": filename,
        "message": clean_text(error.get("message"), 300) or "unknown error",
        "code": clean_text(error.get("code"), 50) or "error",
        "product": product_name(mail_from),
    }
    return _build(
        IMAGE_FAILED, image.get("image_id"), to, f'Your image "{clean_text(filename, 60)}" could not be processed',
        FAILED_TEXT.substitute(**values), _html(FAILED_HTML, values), mail_from, now,
    )
