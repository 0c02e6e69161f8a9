// Signed media URLs (contract "Delivery"), verified here so that no Python service is in the path
// of a request for an output: `<img src>`, email links and CDNs fetch them without credentials.
//
//   /media/<stored output>/<file name>?expires=<unix seconds>&ascii=<fallback name>&signature=<s>
//
// <s> is base64url(HMAC-SHA256(key, everything before "&signature=")), exactly as the client sent
// it (shared/media_urls.py mints them): any character changed, added or removed fails. The keys
// are MEDIA_SIGNING_KEY then MEDIA_SIGNING_KEYS_PREVIOUS, written into nginx.conf's
// $media_signing_keys by scripts/render-nginx-conf; any of them verifies, so keys rotate without
// breaking links already sent. nginx then serves the output from the store as it serves an
// authenticated download (its ETag, Last-Modified, Range, HEAD, 304); the headers below are added.

const crypto = require('crypto');

const SIGNATURE_PARAM = '&signature=';

function signedParts(r) {
    const uri = r.variables.request_uri;
    const at = uri.lastIndexOf(SIGNATURE_PARAM);
    if (at < 0) {
        return null;
    }
    return {signed: uri.slice(0, at), signature: uri.slice(at + SIGNATURE_PARAM.length)};
}

function param(signed, name) {
    const match = new RegExp('[?&]' + name + '=([^&]*)').exec(signed);
    return match ? match[1] : null;
}

// Constant time: as long whatever the first differing character, so the signature cannot be
// guessed one character at a time.
function sameText(a, b) {
    if (a.length !== b.length) {
        return false;
    }
    let difference = 0;
    for (let i = 0; i < a.length; i++) {
        difference |= a.charCodeAt(i) ^ b.charCodeAt(i);
    }
    return difference === 0;
}

function signedByAnyKey(r, parts) {
    const keys = r.variables.media_signing_keys.split(',');
    let verified = false;
    for (let i = 0; i < keys.length; i++) {
        if (keys[i] === '') {
            continue;
        }
        const expected = crypto.createHmac('sha256', keys[i]).update(parts.signed).digest('base64url');
        // Every key is tried: the time taken does not say which one matched.
        verified = sameText(expected, parts.signature) || verified;
    }
    return verified;
}

// "ok", "invalid_signature" or "link_expired" (nginx.conf answers the last two as JSON 403s).
function verdict(r) {
    const parts = signedParts(r);
    if (parts === null || !signedByAnyKey(r, parts)) {
        return 'invalid_signature';
    }
    const expires = param(parts.signed, 'expires');
    if (expires === null || !/^[0-9]{1,12}$/.test(expires)) {
        return 'invalid_signature';
    }
    return Date.now() / 1000 >= Number(expires) ? 'link_expired' : 'ok';
}

function isMedia(r) {
    return r.variables.request_uri.startsWith('/media/');
}

// Never cached beyond the link's own life. Empty (no header) for anything but a signed URL: the
// authenticated downloads share the locations that serve the bytes.
function cacheControl(r) {
    if (!isMedia(r)) {
        return '';
    }
    const parts = signedParts(r);
    const left = Math.floor(Number(param(parts.signed, 'expires')) - Date.now() / 1000);
    return 'public, max-age=' + Math.max(0, left);
}

// RFC 6266: the readable ASCII fallback and the exact name (already percent-encoded as UTF-8 in
// the path, which is what filename* wants), both chosen by the minter and covered by the signature.
function disposition(r) {
    if (!isMedia(r)) {
        return '';
    }
    const parts = signedParts(r);
    const path = parts.signed.split('?')[0];
    const exactName = path.slice(path.lastIndexOf('/') + 1);
    const fallback = decodeURIComponent(param(parts.signed, 'ascii') || 'image').replace(/["\\\r\n]/g, '_');
    return 'inline; filename="' + fallback + '"; filename*=UTF-8\'\'' + exactName;
}

export default {verdict, cacheControl, disposition};
