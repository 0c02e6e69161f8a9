#!/bin/sh
# The one-shot `create-bucket` service of docker-compose.yml (profile `s3`), in the app image: creates
# the bucket of STORAGE_URL in the bundled SeaweedFS with the services' key, as scripts/seaweedfs
# does (`python -m shared.storage create-bucket`, which leaves a bucket that is already there alone).
# No service creates its bucket itself; upload_service and process_service start once this is done.
#
# The store's S3 API answers (its healthcheck) a little before it takes a bucket: attempts every
# 2 s, CREATE_BUCKET_ATTEMPTS (30) of them. Exit status 2 without an s3:// STORAGE_URL: the profile
# `s3` is on and the services would still write to the folder store.
set -u
say() { printf 'create-bucket: %s\n' "$*" >&2; }

case ${STORAGE_URL:-} in
    s3://*) ;;
    *)
        say "STORAGE_URL is '${STORAGE_URL:-}', not s3://...: with the profile s3, run"
        say "  STORAGE_URL=s3://imageproc COMPOSE_PROFILES=s3 docker compose up --build"
        exit 2
        ;;
esac

attempts=${CREATE_BUCKET_ATTEMPTS:-30}
attempt=1
while :; do
    if python -m shared.storage create-bucket; then
        exit 0
    fi
    if [ "$attempt" -ge "$attempts" ]; then
        say "no bucket after $attempts attempts"
        exit 1
    fi
    attempt=$((attempt + 1))
    sleep 2
done
