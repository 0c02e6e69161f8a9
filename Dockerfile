# One image for the four Nameko services. docker-compose.yml picks the service of each container
# with its command: the same `nameko run --config config.yaml <module>:<Class>` as the Procfile.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONWARNINGS="ignore:pkg_resources is deprecated,ignore::Warning:nameko.cli.commands"

WORKDIR /app

# Dependencies first, so this layer is rebuilt only when the lock file changes.
COPY requirements.lock ./
RUN pip install -r requirements.lock

# An unprivileged user. /data holds everything the services write (storage, JWT keys, outbox),
# mounted as named volumes by docker-compose.yml; Docker gives a new named volume the owner of
# the folder it is mounted on, so these folders must exist here, owned by the app user.
# uid 10001 is also the user of the nginx container, which reads the files it sends.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin app \
    && mkdir -p /data/storage /data/keys /data/outbox \
    && chown -R app:app /data

# The code stays owned by root: the services can read it, not change it.
COPY . .

ENV STORAGE_DIR=/data/storage \
    MAIL_OUTBOX_DIR=/data/outbox \
    JWT_PRIVATE_KEY_FILE=/data/keys/jwt-ed25519.pem \
    JWT_PUBLIC_KEY_FILE=/data/keys/jwt-ed25519.pub.pem

USER app
EXPOSE 8001 8002 8003 8004
CMD ["nameko", "run", "--config", "config.yaml", "user_service.service:UserService"]
