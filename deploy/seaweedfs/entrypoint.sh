#!/bin/sh
# The entrypoint of the `seaweedfs` service of docker-compose.yml (profile `s3`): the bundled object
# store as scripts/seaweedfs runs it, with SigV4 identities so that every request is signed and a
# wrong key is refused. Two identities, the same as scripts/seaweedfs writes:
#   the services' (read, write, list, delete): AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY
#   the gateway's (read only):                 GATEWAY_S3_ACCESS_KEY_ID / GATEWAY_S3_SECRET_ACCESS_KEY
# docker-compose.yml gives this container, the services and nginx the same four variables, with
# development-only defaults there. The identities file is written at every start, outside the data
# volume, so a changed key takes effect on the next start and no key is kept with the data.
#
# Then the image's own entrypoint runs with this script's arguments (docker-compose.yml's
# `command:`, `server ... -s3 -s3.config=<this file>`): it owns /data to the `seaweed` user, drops
# root and runs `weed`.
#
# Environment: SEAWEEDFS_S3_CONFIG (the file to write, /etc/seaweedfs/imageproc-identities.json),
# SEAWEEDFS_ENTRYPOINT (the image's entrypoint, /entrypoint.sh).
set -eu

CONFIG=${SEAWEEDFS_S3_CONFIG:-/etc/seaweedfs/imageproc-identities.json}
say() { printf 'seaweedfs: %s\n' "$*" >&2; }

# The keys go into JSON as they are: plain characters only (what AWS and `aws iam` make).
check_key() {  # NAME VALUE
    case $2 in
        '') say "$1 is empty: set it (docker-compose.yml, the seaweedfs service)"; exit 1 ;;
        *[!A-Za-z0-9+/=._-]*) say "$1 may hold letters, digits and + / = . _ - only"; exit 1 ;;
    esac
}
check_key AWS_ACCESS_KEY_ID "${AWS_ACCESS_KEY_ID:-}"
check_key AWS_SECRET_ACCESS_KEY "${AWS_SECRET_ACCESS_KEY:-}"
check_key GATEWAY_S3_ACCESS_KEY_ID "${GATEWAY_S3_ACCESS_KEY_ID:-}"
check_key GATEWAY_S3_SECRET_ACCESS_KEY "${GATEWAY_S3_SECRET_ACCESS_KEY:-}"
if [ "$AWS_ACCESS_KEY_ID" = "$GATEWAY_S3_ACCESS_KEY_ID" ]; then
    say "AWS_ACCESS_KEY_ID and GATEWAY_S3_ACCESS_KEY_ID must differ: the gateway's key is read-only"
    exit 1
fi

mkdir -p "$(dirname "$CONFIG")"
(
    umask 077
    cat > "$CONFIG.tmp" <<EOF
{"identities": [
  {"name": "imageproc-services",
   "credentials": [{"accessKey": "$AWS_ACCESS_KEY_ID", "secretKey": "$AWS_SECRET_ACCESS_KEY"}],
   "actions": ["Read", "Write", "List", "Tagging", "Admin"]},
  {"name": "imageproc-gateway",
   "credentials": [{"accessKey": "$GATEWAY_S3_ACCESS_KEY_ID", "secretKey": "$GATEWAY_S3_SECRET_ACCESS_KEY"}],
   "actions": ["Read"]}
]}
EOF
)
# weed runs as `seaweed` (the image's entrypoint drops root): the file must be its own.
if [ "$(id -u)" = 0 ] && id seaweed >/dev/null 2>&1; then
    chown seaweed "$CONFIG.tmp"
fi
mv "$CONFIG.tmp" "$CONFIG"

# weed reads the keys from the file alone (with AWS_* in its environment and no file, it would make
# them an admin identity of its own).
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY GATEWAY_S3_ACCESS_KEY_ID GATEWAY_S3_SECRET_ACCESS_KEY
exec "${SEAWEEDFS_ENTRYPOINT:-/entrypoint.sh}" "$@"
