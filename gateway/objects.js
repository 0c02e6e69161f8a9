// Downloads from an S3-compatible store (STORAGE_URL=s3://...), fetched and streamed by nginx
// itself: upload_service authorizes the download and answers `X-Accel-Redirect: /_objects/<key>`;
// the internal location /_objects/ proxies to the store with the request signed here, AWS
// Signature Version 4, with the gateway's own read-only key. No image byte passes through a
// Python service, no presigned URL is minted per download, and the services' read-write key
// never reaches the gateway.
//
// The key: GATEWAY_S3_ACCESS_KEY_ID / GATEWAY_S3_SECRET_ACCESS_KEY, else AWS_ACCESS_KEY_ID /
// AWS_SECRET_ACCESS_KEY; the region: AWS_REGION, else AWS_DEFAULT_REGION, else us-east-1 (nginx.conf
// lets these through with `env`). The payload is not signed (UNSIGNED-PAYLOAD): a GET has none.
// Object keys are made of [A-Za-z0-9._/-] only (shared/storage/location.py), so the path needs no
// escaping to be canonical.

const crypto = require('crypto');

const PREFIX = '/_objects/';

function hmac(key, data) {
    return crypto.createHmac('sha256', key).update(data).digest();
}

function sha256Hex(data) {
    return crypto.createHash('sha256').update(data).digest('hex');
}

function credentials() {
    const env = process.env;
    return {
        accessKey: env.GATEWAY_S3_ACCESS_KEY_ID || env.AWS_ACCESS_KEY_ID || '',
        secretKey: env.GATEWAY_S3_SECRET_ACCESS_KEY || env.AWS_SECRET_ACCESS_KEY || '',
        region: env.AWS_REGION || env.AWS_DEFAULT_REGION || 'us-east-1',
    };
}

// 20261205T081500Z, once per request: the Authorization header and x-amz-date must agree, and
// nginx may evaluate the two variables in either order.
function amzDate(r) {
    if (!r.variables.s3_amz_date) {
        r.variables.s3_amz_date = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+/, '');
    }
    return r.variables.s3_amz_date;
}

// The path of the object in the store's request: /<bucket>/<key> (path style) or /<key>.
function objectPath(r) {
    return r.variables.s3_path_prefix + r.uri.slice(PREFIX.length);
}

function canonicalRequest(method, path, host, date) {
    return [
        method,
        path,
        '',  // no query string
        'host:' + host,
        'x-amz-content-sha256:UNSIGNED-PAYLOAD',
        'x-amz-date:' + date,
        '',
        'host;x-amz-content-sha256;x-amz-date',
        'UNSIGNED-PAYLOAD',
    ].join('\n');
}

function authorization(r) {
    const key = credentials();
    const date = amzDate(r);
    const day = date.slice(0, 8);
    const scope = day + '/' + key.region + '/s3/aws4_request';
    const request = canonicalRequest(r.method, objectPath(r), r.variables.s3_host, date);
    const toSign = ['AWS4-HMAC-SHA256', date, scope, sha256Hex(request)].join('\n');
    let signingKey = hmac('AWS4' + key.secretKey, day);
    signingKey = hmac(signingKey, key.region);
    signingKey = hmac(signingKey, 's3');
    signingKey = hmac(signingKey, 'aws4_request');
    const signature = crypto.createHmac('sha256', signingKey).update(toSign).digest('hex');
    return 'AWS4-HMAC-SHA256 Credential=' + key.accessKey + '/' + scope
        + ', SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=' + signature;
}

export default {amzDate, objectPath, authorization, canonicalRequest};
