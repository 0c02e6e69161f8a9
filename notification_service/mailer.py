"""Sends email: to the SMTP server of `SMTP_URL`, or, when it is unset, as `.eml` files in a mail
folder (`MAIL_OUTBOX_DIR`, relative to the repository root).

`SMTP_URL` forms:
- `smtp://[user:pass@]host[:port]`: plain SMTP (port 25 by default), upgraded with STARTTLS when the
  server offers it (the certificate is verified);
- `smtps://[user:pass@]host[:port]`: implicit TLS (port 465 by default).
User and password are percent-decoded (`%40` for `@`). Every socket operation has a timeout and a
whole delivery has a deadline, so a stalled server fails the send instead of hanging the worker.

Logs name a message by its kind and Message-ID only: never a body, never an address.
"""
import logging
import os
import smtplib
import socket
import ssl
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

import eventlet
from nameko.extensions import DependencyProvider
from opentelemetry.trace import SpanKind

from notification_service.templates import message_kind
from shared.config import resolve_path
from shared.metrics import EMAILS
from shared.settings import SETTINGS, setting
from shared.tracing import tracer

log = logging.getLogger(__name__)

DEFAULT_PORTS = {"smtp": 25, "smtps": 465}


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    implicit_tls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = SETTINGS["SMTP_TIMEOUT_SECONDS"].default


def parse_smtp_url(url, timeout=SETTINGS["SMTP_TIMEOUT_SECONDS"].default):
    """`SmtpSettings` for an `smtp://` or `smtps://` URL; None for an empty one (mail folder mode).
    Raises ValueError for anything else, so a typo fails at startup, not at the first email."""
    if url is None or not str(url).strip():
        return None
    parts = urlsplit(str(url).strip())
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ValueError(f"SMTP_URL must start with smtp:// or smtps://, not {scheme or 'nothing'}://")
    if not parts.hostname:
        raise ValueError("SMTP_URL names no host")
    port = parts.port or DEFAULT_PORTS[scheme]  # .port raises ValueError for a bad port
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    return SmtpSettings(
        host=parts.hostname,
        port=port,
        implicit_tls=scheme == "smtps",
        username=username,
        password=password,
        timeout=float(timeout),
    )


class MailDeliveryError(Exception):
    """A message was not delivered. `permanent` when the server refused it for good (a 5xx reply):
    a retry would get the same answer. The text names the message and the reason, never an address."""

    def __init__(self, message, permanent=False):
        super().__init__(message)
        self.permanent = permanent


def describe_failure(exc):
    """(reason, permanent) for a failed delivery, without the addresses SMTP errors carry."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = sorted({code for code, _ in exc.recipients.values()})
        return f"recipients refused ({', '.join(map(str, codes))})", all(code >= 500 for code in codes)
    if isinstance(exc, smtplib.SMTPResponseException):  # sender refused, auth failed, data refused...
        return f"{type(exc).__name__} {exc.smtp_code}", exc.smtp_code >= 500
    if isinstance(exc, smtplib.SMTPException):
        return type(exc).__name__, False
    if isinstance(exc, OSError):  # refused, unreachable, timed out, TLS handshake
        return f"{type(exc).__name__}: {exc}", False
    return type(exc).__name__, False


def _envelope(message):
    """Sender and recipients from the structured headers (not re-parsed from header text)."""
    sender = message["From"].addresses[0].addr_spec
    recipients = [address.addr_spec for name in ("To", "Cc", "Bcc") for header in message.get_all(name, [])
                  for address in header.addresses]
    return sender, recipients


class SmtpTransport:
    name = "smtp"

    def __init__(self, settings):
        self.settings = settings

    def _connect(self):
        settings = self.settings
        # The EHLO name; smtplib's default (getfqdn) may wait on DNS.
        local_hostname = socket.gethostname() or "localhost"
        if settings.implicit_tls:
            return smtplib.SMTP_SSL(
                settings.host, settings.port, local_hostname=local_hostname,
                timeout=settings.timeout, context=ssl.create_default_context(),
            )
        return smtplib.SMTP(settings.host, settings.port, local_hostname=local_hostname, timeout=settings.timeout)

    def deliver(self, message):
        sender, recipients = _envelope(message)
        deadline = TimeoutError(f"SMTP delivery took longer than {self._deadline()} seconds")
        with eventlet.Timeout(self._deadline(), deadline):
            with self._connect() as smtp:
                smtp.ehlo()
                if not self.settings.implicit_tls and smtp.has_extn("starttls"):
                    smtp.starttls(context=ssl.create_default_context())
                    smtp.ehlo()
                if self.settings.username:
                    smtp.login(self.settings.username, self.settings.password or "")
                smtp.send_message(message, from_addr=sender, to_addrs=recipients)

    def check(self):
        """Cheap readiness: connect, greet, NOOP, quit (no login, no mail)."""
        with self._connect() as smtp:
            code, _ = smtp.noop()
            if code != 250:
                raise smtplib.SMTPResponseException(code, "NOOP refused")

    def _deadline(self):
        # Connect, EHLO, STARTTLS, AUTH, MAIL, RCPT, DATA, each bounded by the socket timeout.
        return self.settings.timeout * 3

    def __repr__(self):
        return f"SmtpTransport({self.settings.host}:{self.settings.port}, tls={self.settings.implicit_tls})"


def mail_file_name(message):
    """`<welcome.123@host>` -> `welcome.123_host.eml`: a redelivered message overwrites its own file."""
    message_id = str(message.get("Message-ID", "")).strip().strip("<>")
    stem = "".join(char if char.isalnum() or char in ".-" else "_" for char in message_id).strip("._")
    return f"{stem[:200] or uuid.uuid4().hex}.eml"


class MailFolderTransport:
    """Writes each message as one `.eml` file; readers never see a half-written one."""

    name = "mail folder"

    def __init__(self, folder):
        self.folder = Path(folder)

    def deliver(self, message):
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.folder / mail_file_name(message)
        # Dot-prefixed and not .eml until renamed: globbing readers skip it.
        descriptor, temporary = tempfile.mkstemp(dir=self.folder, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(message.as_bytes())
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return target

    def check(self):
        """The folder exists (or can be made) and takes a file."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=self.folder, prefix=".health-", suffix=".tmp"):
            pass

    def __repr__(self):
        return f"MailFolderTransport({self.folder})"


def transport_from_config(config):
    settings = parse_smtp_url(
        setting(config, "SMTP_URL"), timeout=setting(config, "SMTP_TIMEOUT_SECONDS")
    )
    if settings is not None:
        return SmtpTransport(settings)
    return MailFolderTransport(resolve_path(setting(config, "MAIL_OUTBOX_DIR")))


class MailClient:
    """What a worker gets: `send(message)` (traced, logged) and `check()` for health."""

    def __init__(self, transport):
        self.transport = transport

    def send(self, message):
        kind, message_id = message_kind(message), str(message.get("Message-ID", ""))
        attributes = {"mail.transport": self.transport.name, "mail.kind": kind, "mail.message_id": message_id}
        with tracer().start_as_current_span("smtp.send", kind=SpanKind.CLIENT, attributes=attributes):
            try:
                self.transport.deliver(message)
            except Exception as exc:
                reason, permanent = describe_failure(exc)
                EMAILS.labels(kind, "failed").inc()
                log.error(
                    "sending %s mail %s via %s failed: %s", kind, message_id, self.transport.name, reason,
                    extra={"mail_kind": kind, "message_id": message_id, "permanent": permanent},
                )
                # Raised without its cause: SMTP errors quote addresses, and nameko logs the traceback.
                raise MailDeliveryError(f"{kind} mail {message_id}: {reason}", permanent) from None
        EMAILS.labels(kind, "sent").inc()
        log.info(
            "sent %s mail %s via %s", kind, message_id, self.transport.name,
            extra={"mail_kind": kind, "message_id": message_id},
        )

    def check(self):
        self.transport.check()


class Mailer(DependencyProvider):
    """Reads the mail configuration once, at container setup; each worker gets a `MailClient`."""

    def setup(self):
        self.transport = transport_from_config(self.container.config)
        log.info("mail goes to %r", self.transport)

    def get_dependency(self, worker_ctx):
        return MailClient(self.transport)
