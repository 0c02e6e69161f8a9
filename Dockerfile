# One image for the four Nameko services. docker-compose.yml picks the service of each container
# with its command: the same `nameko run --config config.yaml <module>:<Class>` as the Procfile.
#
#   docker build -t imageproc-app:dev .
#   docker build --build-arg BASE_IMAGE=localhost/imageproc-debian:bookworm -t imageproc-app:dev .
#
# BASE_IMAGE: any image with Python 3.11 (the version requirements.lock is made for) as `python3`,
# its venv module and CA certificates: the official python image by default, or a plain Debian
# bookworm with Debian's python3 and python3-venv (scripts/build-debian-images makes one without a
# registry). Both stages use it, so the venv's interpreter is the final image's own.
ARG BASE_IMAGE=python:3.11-slim-bookworm

# ---- build: the dependencies in a venv --------------------------------------------------------
FROM ${BASE_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

# pip trusts the system's CA bundle rather than its own copy, so a build behind a TLS-intercepting
# proxy works once the base image trusts the proxy's CA (scripts/build-debian-images' base trusts
# what the host trusts).
ARG PIP_CERT=/etc/ssl/certs/ca-certificates.crt

# Only the lock file: this layer is rebuilt when the dependencies change, not when the code does.
COPY requirements.lock /tmp/requirements.lock
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-compile -r /tmp/requirements.lock \
    # honcho runs the Procfile outside containers; the image runs one service per container.
    && /opt/venv/bin/pip uninstall --yes honcho

# ---- the image: the venv, the code, an unprivileged user --------------------------------------
FROM ${BASE_IMAGE}

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONWARNINGS="ignore:pkg_resources is deprecated,ignore::Warning:nameko.cli.commands"

# uid 10001 is also the gateway's (docker-compose.yml runs nginx as 10001:10001), which reads the
# files the services store. /data holds everything the services write (storage, JWT keys, outbox),
# mounted as named volumes by docker-compose.yml; a new named volume takes the owner of the folder
# it is mounted on, so the folders exist here, owned by the app user.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin app \
    && mkdir -p /data/storage /data/keys /data/outbox \
    && chown -R app:app /data

COPY --from=build /opt/venv /opt/venv

# The code stays owned by root: the services can read it, not change it.
WORKDIR /app
COPY . .

ENV STORAGE_DIR=/data/storage \
    MAIL_OUTBOX_DIR=/data/outbox \
    JWT_PRIVATE_KEY_FILE=/data/keys/jwt-ed25519.pem \
    JWT_PUBLIC_KEY_FILE=/data/keys/jwt-ed25519.pub.pem

USER app
EXPOSE 8001 8002 8003 8004

# The service of this container answers its own GET /healthz (WEB_SERVER_ADDRESS says where).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=5 \
    CMD ["python", "-m", "shared.healthcheck"]

# `nameko run` is PID 1 (exec form, no shell in between), so the SIGTERM of `docker stop` reaches
# it: it stops taking work and lets running workers finish. docker-compose.yml gives each service
# a stop_grace_period long enough for that (process_service: PROCESSING_TIMEOUT_SECONDS + margin).
STOPSIGNAL SIGTERM
CMD ["nameko", "run", "--config", "config.yaml", "user_service.service:UserService"]
