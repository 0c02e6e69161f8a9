# Sourced by bash in the nginx container of docker-compose.yml before scripts/render-nginx-conf: the route
# of nginx.conf's /_objects/ to an s3:// store (the bundled SeaweedFS or any other), for a container
# that has no venv to ask shared/storage/gateway.py. Sets and exports what object_store_route()
# returns there, from the same variables:
#   S3_SCHEME S3_UPSTREAM ("host:port") S3_HOST (the Host signed) S3_PATH_PREFIX
# and MEDIA_LOCATION, where signed /media/ URLs find outputs (media_location() there).
# A store with AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) is addressed path-style,
# http://endpoint/<bucket>/<key>; AWS's own S3 virtual-hosted style,
# https://<bucket>.s3.<region>.amazonaws.com/<key>. Without an s3:// STORAGE_URL nothing is set and
# render-nginx-conf's placeholder route stays, which no request takes.
# tests/unit/test_compose.py checks it against object_store_route().

case ${STORAGE_URL:-} in
    s3://*)
        _s3_bucket=${STORAGE_URL#s3://}
        _s3_bucket=${_s3_bucket%%/*}
        _s3_endpoint=${AWS_ENDPOINT_URL_S3:-${AWS_ENDPOINT_URL:-}}
        if [ -n "$_s3_endpoint" ]; then
            case $_s3_endpoint in
                *://*) ;;
                *) echo "gateway-s3-route: AWS_ENDPOINT_URL_S3 '$_s3_endpoint' is not a URL" >&2; return 1 ;;
            esac
            S3_SCHEME=${_s3_endpoint%%://*}
            S3_SCHEME=${S3_SCHEME,,}
            _s3_authority=${_s3_endpoint#*://}
            _s3_authority=${_s3_authority%%/*}
            _s3_authority=${_s3_authority##*@}
            _s3_authority=${_s3_authority,,}
            case $S3_SCHEME in
                http) _s3_default_port=80 ;;
                https) _s3_default_port=443 ;;
                *) echo "gateway-s3-route: AWS_ENDPOINT_URL_S3 '$_s3_endpoint' is neither http nor https" >&2; return 1 ;;
            esac
            case $_s3_authority in
                *:*) _s3_hostname=${_s3_authority%:*} _s3_port=${_s3_authority##*:} ;;
                *) _s3_hostname=$_s3_authority _s3_port= ;;
            esac
            S3_UPSTREAM=$_s3_hostname:${_s3_port:-$_s3_default_port}
            # The Host boto3 signs: the port only when it is not the scheme's default.
            if [ -z "$_s3_port" ] || [ "$_s3_port" = "$_s3_default_port" ]; then
                S3_HOST=$_s3_hostname
            else
                S3_HOST=$_s3_hostname:$_s3_port
            fi
            S3_PATH_PREFIX=/$_s3_bucket/
        else
            _s3_region=${AWS_REGION:-${AWS_DEFAULT_REGION:-us-east-1}}
            S3_HOST=$_s3_bucket.s3.$_s3_region.amazonaws.com
            S3_SCHEME=https
            S3_UPSTREAM=$S3_HOST:443
            S3_PATH_PREFIX=/
        fi
        _s3_prefix=${STORAGE_URL#s3://$_s3_bucket}
        _s3_prefix=${_s3_prefix#/}
        _s3_prefix=${_s3_prefix%/}
        MEDIA_LOCATION=/_objects/${_s3_prefix:+$_s3_prefix/}outputs/
        export S3_SCHEME S3_UPSTREAM S3_HOST S3_PATH_PREFIX MEDIA_LOCATION
        unset _s3_bucket _s3_prefix _s3_endpoint _s3_authority _s3_default_port _s3_hostname _s3_port _s3_region
        ;;
esac
