"""Every setting of the suite, declared once: its name, type, default and meaning.

`config.yaml` is written from this table (`python -m shared.settings`; `--check` says whether it is
up to date, and a unit test does the same), each setting as `NAME: ${NAME:default}` so that the
environment variable of the same name overrides it (nameko's substitution). The README's
configuration table is checked against it too. Code reads a setting with `setting(config, NAME)`:
the value from the configuration, or the default here, of the declared type. No default is
written anywhere else.

To add a setting: one `Setting(...)` below, `python -m shared.settings`, a README row.
"""
import argparse
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

from shared.config import REPO_ROOT

CONFIG_FILE = REPO_ROOT / "config.yaml"


@dataclass(frozen=True)
class Setting:
    name: str
    type: type
    default: object  # None: empty (the setting is optional)
    doc: str
    key: str = None  # the key in the configuration when it is not the name (nameko's `max_workers`)
    fixed: bool = False  # not read from the environment

    @property
    def config_key(self):
        return self.key or self.name

    def parse(self, raw):
        if raw is None or raw == "":
            raw = self.default
        if raw is None:
            return None
        if self.type is bool and isinstance(raw, str):
            return raw.strip().lower() in ("1", "true", "yes", "on")
        return self.type(raw)


@dataclass(frozen=True)
class Section:
    title: str


TABLE = (
    Section("Broker and HTTP (read by nameko itself)"),
    Setting("AMQP_URI", str, "pyamqp://guest:guest@127.0.0.1:5672/", "RabbitMQ."),
    Setting("WEB_SERVER_ADDRESS", str, "127.0.0.1:8000",
            "Each HTTP service runs in its own process on its own port (the Procfile sets it per process)."),
    Setting("MAX_WORKERS", int, 10,
            "Concurrent workers per process; also the AMQP prefetch. upload_service holds a worker per long-poll.",
            key="max_workers"),
    Setting("SERVICE_CONTAINER_CLS", str, "shared.container.ServiceContainer",
            "A container killed by an error ends its process within seconds (shared/container.py), so that "
            "its supervisor starts a healthy one instead of a dead one answering requests.", fixed=True),

    Section("Data"),
    Setting("DATABASE_URL", str, "postgresql+psycopg2://postgres@127.0.0.1:5432/imageproc",
            "One database for all services by default; set USER_DATABASE_URL / UPLOAD_DATABASE_URL to split."),
    Setting("USER_DATABASE_URL", str, None, "A database of user_service's own."),
    Setting("UPLOAD_DATABASE_URL", str, None, "A database of upload_service's own."),
    Setting("REDIS_URL", str, "redis://127.0.0.1:6379/0", "Status cache, long-poll doorbell, login throttle."),

    Section("Image storage"),
    Setting("STORAGE_URL", str, None,
            "Where image bytes live: empty or file:///absolute/path for a folder (STORAGE_DIR when empty), "
            "s3://bucket[/prefix] for any S3-compatible store. With s3://, the endpoint, region and credentials "
            "are read as AWS SDKs read them: AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL, AWS_REGION, "
            "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (README, \"Image storage\")."),
    Setting("STORAGE_DIR", str, "var/storage",
            "The folder of the file:// store; nginx serves downloads from the same folder."),
    Setting("SPOOL_DIR", str, None,
            "Local scratch files (an upload being validated, an original being processed, an output being "
            "encoded), removed when their request or run ends. Empty: the system's temporary folder."),
    Setting("STORAGE_TIMEOUT_SECONDS", float, 10,
            "s3://: per connection attempt (at most 3 s) and per read; with 3 attempts, an unreachable store "
            "answers an upload 503 within about 10 s."),
    Setting("STORAGE_MAX_CONNECTIONS", int, 20, "s3://: connections each process keeps to the store."),
    Setting("GATEWAY_S3_ACCESS_KEY_ID", str, None,
            "s3://: the read-only key nginx signs downloads with (gateway/objects.js); empty: AWS_ACCESS_KEY_ID. "
            "Read by scripts/render-nginx-conf and nginx, not by the services."),
    Setting("GATEWAY_S3_SECRET_ACCESS_KEY", str, None, "Its secret; empty: AWS_SECRET_ACCESS_KEY."),

    Section("Mail"),
    Setting("SMTP_URL", str, None,
            "smtp://[user:pass@]host:port, smtps://...; empty: mail is written as .eml files to MAIL_OUTBOX_DIR."),
    Setting("MAIL_OUTBOX_DIR", str, "var/outbox", "Where mail goes without SMTP_URL."),
    Setting("MAIL_FROM", str, "Image Service <no-reply@imageproc.localhost>", "The sender of every email."),
    Setting("SMTP_TIMEOUT_SECONDS", float, 10, "Per SMTP operation."),
    Setting("PUBLIC_BASE_URL", str, None,
            "Where users reach the gateway: links in emails are made absolute with it. Empty: the local "
            "gateway, http://127.0.0.1:GATEWAY_PORT."),
    Setting("GATEWAY_PORT", int, 8080, "Where nginx listens (scripts/render-nginx-conf reads it as well)."),

    Section("Tokens and logins"),
    Setting("JWT_PRIVATE_KEY_FILE", str, "var/keys/jwt-ed25519.pem",
            "Ed25519 key pair (a development pair is created by `python -m shared.keys` on first run)."),
    Setting("JWT_PUBLIC_KEY_FILE", str, "var/keys/jwt-ed25519.pub.pem",
            "The public key; several files, comma-separated, for a rotation."),
    Setting("JWT_ISSUER", str, "imageproc", "The tokens' `iss`."),
    Setting("JWT_AUDIENCE", str, "imageproc-api", "The tokens' `aud`."),
    Setting("JWT_TTL_SECONDS", int, 3600, "How long a token is valid."),
    Setting("BCRYPT_ROUNDS", int, 12, "bcrypt cost."),
    Setting("LOGIN_MAX_FAILURES", int, 10, "Failed logins before an account is locked for LOGIN_LOCK_SECONDS."),
    Setting("LOGIN_LOCK_SECONDS", int, 300, "How long that lock lasts (it always expires)."),

    Section("Signed media URLs"),
    Setting("MEDIA_SIGNING_KEY", str, None,
            "HMAC-SHA256 key of signed output URLs (contract \"Delivery\"), shared by upload_service, which "
            "mints them, and the gateway, which verifies them: letters, digits, '-' and '_', at least 32. Empty: "
            "derived from the JWT private key, which suits one machine; set it when the gateway has no such file."),
    Setting("MEDIA_SIGNING_KEYS_PREVIOUS", str, None,
            "Earlier keys, comma-separated, that still verify: a rotation keeps links already sent working until "
            "their key is dropped from here."),
    Setting("MEDIA_URL_TTL", int, 86400, "Seconds a signed URL in an API answer stays valid."),
    Setting("EMAIL_LINK_TTL", int, 604800, "Seconds the signed link in an \"image ready\" email stays valid."),

    Section("Limits of the public contract"),
    Setting("MAX_UPLOAD_BYTES", int, 26214400, "The largest upload (25 MiB)."),
    Setting("MAX_IMAGE_PIXELS", int, 50000000, "The largest input, and the largest image any step may make."),
    Setting("MAX_OPERATIONS", int, 20, "Operations per upload."),
    Setting("LONG_POLL_MAX_SECONDS", float, 60, "The largest `wait` of a status long-poll."),

    Section("Processing"),
    Setting("MAX_PROCESSING_ATTEMPTS", int, 3,
            "An image whose processing was started this many times without a result (its worker crashed or was "
            "killed each time) fails with `processing_crashed`; the other images go on."),
    Setting("PROCESSING_LEASE_SECONDS", float, 15,
            "A worker holds a lease on the image it processes and renews it every third of this. A lease that runs "
            "out gets a last chance of two more renewal periods (its worker may only have been cut off from the "
            "broker); still silent then, the worker died (a crash) and a redelivered message takes over."),
    Setting("PROCESSING_TIMEOUT_SECONDS", float, 600,
            "A pipeline still running after this fails its image (`processing_timeout`): a hung library call must "
            "not hold an image in `processing` for ever. Far above what the largest image takes."),
    Setting("PROCESS_BUDGET_PIXELS", int, 150_000_000,
            "How many pixels one process_service may hold in pipelines at once (about 4 bytes each, several copies "
            "per step): larger images wait their turn instead of running out of memory together."),
    Setting("DECODE_BUDGET_PIXELS", int, 100_000_000,
            "How many pixels one upload_service may be decoding at once while validating uploads."),

    Section("Waiting on others"),
    Setting("RPC_TIMEOUT_SECONDS", float, 10, "How long a service waits on another over RPC (requests expire with it)."),
    Setting("PUBLISH_TIMEOUT_SECONDS", float, 10,
            "How long a service waits for the broker to take an event or a reply (a broker in a disk or memory "
            "alarm takes none); an event not taken stays in the outbox, or its message is retried later."),
)

SETTINGS = {entry.name: entry for entry in TABLE if isinstance(entry, Setting)}


def setting(config, name):
    """The value of setting `name` in `config` (nameko's configuration dict), or its default."""
    declared = SETTINGS[name]
    return declared.parse(config.get(declared.config_key))


def database_url(config, service_key):
    """A service's own database URL (`USER_DATABASE_URL`, ...) or else the shared `DATABASE_URL`."""
    url = setting(config, service_key) or setting(config, "DATABASE_URL")
    # SQLAlchemy 2 needs the driver named; accept the plain form users copy from elsewhere.
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+psycopg2://" + url[len(plain):]
    return url


# -- config.yaml ------------------------------------------------------------------------------------

HEADER = """\
# One configuration for every service, written from shared/settings.py (`python -m shared.settings`):
# change that table, not this file. `${VAR:default}` reads the environment (README, "Configuration");
# every process of the suite is started with `--config config.yaml`.
"""

LOGGING = """\
LOGGING:
  version: 1
  disable_existing_loggers: false
  filters:
    context:
      (): shared.logs.ContextFilter
  formatters:
    json:
      (): shared.logs.JsonFormatter
  handlers:
    stdout:
      class: logging.StreamHandler
      stream: ext://sys.stdout
      formatter: json
      filters: [context]
  loggers:
    # One line per request comes from nginx's JSON access log; eventlet's is noise at INFO.
    nameko.web.server:
      level: WARNING
    kombu:
      level: WARNING
    amqp:
      level: WARNING
  root:
    level: ${LOG_LEVEL:INFO}
    handlers: [stdout]
"""


def _yaml_default(value):
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def render_config():
    lines = [HEADER]
    for entry in TABLE:
        if isinstance(entry, Section):
            lines.append(f"\n# -- {entry.title} " + "-" * max(3, 96 - len(entry.title)) + "\n")
            continue
        lines.extend(f"# {line}\n" for line in textwrap.wrap(entry.doc, 98, break_on_hyphens=False))
        if entry.fixed:
            lines.append(f"{entry.config_key}: {entry.default}\n")
        else:
            lines.append(f"{entry.config_key}: ${{{entry.name}:{_yaml_default(entry.default)}}}\n")
    lines.append("\n" + render_presets())
    lines.append("\n" + LOGGING)
    return "".join(lines)


def render_presets():
    """The `presets:` block: the defaults of imaging/presets.py, for operators to edit in their copy."""
    import yaml

    from imaging.presets import DEFAULT_PRESETS

    block = yaml.safe_dump({"presets": DEFAULT_PRESETS}, default_flow_style=None, sort_keys=False)
    return (
        "# -- Presets -------------------------------------------------------------------------------------------\n"
        "# Named pipelines a variant may name instead of its operations (README, \"Variants and presets\";\n"
        "# GET /api/presets lists them). Each is checked at start like an upload's operations: a bad one\n"
        "# stops the service from starting. Without this block, the defaults below apply.\n"
        + block
    )


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m shared.settings", description="Writes config.yaml from the settings table.")
    parser.add_argument("--check", action="store_true", help="exit 1 if config.yaml is out of date; change nothing")
    parser.add_argument("--file", type=Path, default=CONFIG_FILE)
    args = parser.parse_args(argv)
    wanted = render_config()
    if args.check:
        if args.file.read_text() == wanted:
            print(f"{args.file}: up to date")
            return 0
        print(f"{args.file}: out of date; run `python -m shared.settings`", file=sys.stderr)
        return 1
    args.file.write_text(wanted)
    print(f"{args.file}: written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
