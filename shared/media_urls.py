"""Signed media URLs (contract "Delivery"): minted here, verified by the gateway (gateway/media.js),
so an output can be shown where no Bearer header can be sent: an `<img>` tag, an email, a CDN.

    /media/<stored output>/<file name>?expires=<unix seconds>[&formats=<ext>,<ext>,...]&ascii=<fallback name>&signature=<s>

<s> is base64url(HMAC-SHA256(key, everything before "&signature=")) without padding. The path
names the object and the download name, the query the expiry and the ASCII fallback of the name:
the signature covers all that identifies the response. `formats` (an "auto" output, contract
"Delivery") lists the extensions of the object's other formats, smallest first, the stored one
among them: the gateway serves the first that the request's Accept header allows, the stored one
(the fallback, which every client decodes) when none is. `verify` mirrors the gateway, for tests
and tools; the gateway does not call it.
"""
import base64
import datetime as dt
import hashlib
import hmac
import re
import time
from pathlib import Path
from urllib.parse import quote

from shared.config import resolve_path
from shared.settings import setting
from shared.filenames import ascii_fallback

SIGNATURE_PARAM = "&signature="
KEY_PATTERN = re.compile(r"^[A-Za-z0-9_-]{32,}$")


class InvalidSigningKey(ValueError):
    """A signing key the gateway's configuration could not carry, or too short to be secret."""


def signing_keys(config):
    """The keys that verify, current first. The current one is MEDIA_SIGNING_KEY, else derived
    from the JWT private key (secret already, present wherever tokens are issued)."""
    current = setting(config, "MEDIA_SIGNING_KEY") or _derived_key(setting(config, "JWT_PRIVATE_KEY_FILE"))
    previous = [key.strip() for key in (setting(config, "MEDIA_SIGNING_KEYS_PREVIOUS") or "").split(",") if key.strip()]
    keys = [current, *previous]
    for key in keys:
        if not KEY_PATTERN.match(key):
            raise InvalidSigningKey("media signing keys are at least 32 letters, digits, '-' or '_'")
    return keys


def _derived_key(private_key_file):
    secret = Path(resolve_path(private_key_file)).read_bytes()
    digest = hmac.new(secret, b"imageproc media signing key", hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _signature(key, signed):
    digest = hmac.new(key.encode(), signed.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def mint(key, stored_name, filename, expires, formats=()):
    """The signed path of the output `stored_name` (`outputs/<file>`), downloaded as `filename`,
    valid until `expires` (unix seconds); `formats`, the format names of an "auto" output's files
    (each stored beside it with its own extension), smallest first."""
    from imaging.formats import EXTENSIONS

    obj = stored_name.rsplit("/", 1)[-1]
    alternatives = f"&formats={','.join(EXTENSIONS[name] for name in formats)}" if formats else ""
    signed = (f"/media/{quote(obj, safe='')}/{quote(filename, safe='')}"
              f"?expires={int(expires)}{alternatives}&ascii={quote(ascii_fallback(filename), safe='')}")
    return signed + SIGNATURE_PARAM + _signature(key, signed)


def media_url(keys, stored_name, filename, ttl, now=None, formats=()):
    """(url, expires_at as an aware datetime) for a link valid `ttl` seconds from `now`."""
    expires = int((now or time.time()) + ttl)
    return mint(keys[0], stored_name, filename, expires, formats), dt.datetime.fromtimestamp(expires, dt.timezone.utc)


def verify(keys, url, now=None):
    """"ok", "invalid_signature" or "link_expired", as the gateway decides."""
    signed, found, signature = url.rpartition(SIGNATURE_PARAM)
    if not found or not any(hmac.compare_digest(_signature(key, signed), signature) for key in keys):
        return "invalid_signature"
    expires = re.search(r"[?&]expires=([0-9]{1,12})(?:&|$)", signed)
    if not expires:
        return "invalid_signature"
    return "link_expired" if (now or time.time()) >= int(expires.group(1)) else "ok"
