// Signed media URLs (contract "Delivery"), verified here so that no Python service is in the path
// of a request for an output: `<img src>`, email links and CDNs fetch them without credentials.
//
//   /media/<stored output>/<file name>?expires=<unix seconds>[&formats=<ext>,...]&ascii=<fallback name>&signature=<s>
//
// <s> is base64url(HMAC-SHA256(key, everything before "&signature=")), exactly as the client sent
// it (shared/media_urls.py mints them): any character changed, added or removed fails. The keys
// are MEDIA_SIGNING_KEY then MEDIA_SIGNING_KEYS_PREVIOUS, written into nginx.conf's
// $media_signing_keys by scripts/render-nginx-conf; any of them verifies, so keys rotate without
// breaking links already sent. nginx then serves the output from the store as it serves an
// authenticated download (its ETag, Last-Modified, Range, HEAD, 304); the headers below are added.
//
// `formats` (an output made with `"format": "auto"`) lists the extensions of the same output in
// other formats, stored beside it, smallest first: the request gets the first one that is either
// the stored one (the fallback every client decodes) or named by its Accept header, with
// `Vary: Accept` so that caches keep one copy per answer.

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

// The formats a client must name explicitly in Accept to get them: browsers that decode AVIF or
// WebP say so; `*/*` and `image/*` (curl, mail clients, old browsers) name neither.
const NEGOTIATED_TYPES = {avif: 'image/avif', webp: 'image/webp'};

// The media types that Accept names with a q above zero ("image/webp;q=0" refuses WebP).
function acceptedTypes(r) {
    const accepted = {};
    (r.headersIn['Accept'] || '').split(',').forEach(function (range) {
        const parameters = range.split(';');
        let quality = 1;
        for (let i = 1; i < parameters.length; i++) {
            const parameter = parameters[i].trim().toLowerCase();
            if (parameter.startsWith('q=')) {
                quality = Number(parameter.slice(2));
            }
        }
        if (quality > 0) {
            accepted[parameters[0].trim().toLowerCase()] = true;
        }
    });
    return accepted;
}

// The stored object to serve: the signed one, or for an "auto" output the first of its formats
// that the request accepts. Called only once the signature verified: `formats` is ours.
function representation(r) {
    const signed = signedParts(r).signed;
    const object = storedObject(signed);
    const formats = param(signed, 'formats');
    if (formats === null) {
        return object;
    }
    const dot = object.lastIndexOf('.');
    const stored = object.slice(dot + 1);
    const accepted = acceptedTypes(r);
    const extensions = formats.split(',');
    for (let i = 0; i < extensions.length; i++) {
        const extension = extensions[i];
        if (extension === stored) {
            return object;
        }
        if (/^[a-z0-9]{1,8}$/.test(extension) && accepted[NEGOTIATED_TYPES[extension]]) {
            return object.slice(0, dot + 1) + extension;
        }
    }
    return object;
}

// /media/<stored output>/<file name>: nginx.conf's location has checked its shape.
function storedObject(signed) {
    return decodeURIComponent(signed.split('?')[0].split('/')[2]);
}

function isAuto(r) {
    return isMedia(r) && param(signedParts(r).signed, 'formats') !== null;
}

// The answer of an "auto" URL depends on Accept: caches (browsers, CDNs) must key on it.
function vary(r) {
    return isAuto(r) ? 'Accept' : '';
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
    let exactName = path.slice(path.lastIndexOf('/') + 1);
    let fallback = decodeURIComponent(param(parts.signed, 'ascii') || 'image').replace(/["\\\r\n]/g, '_');
    if (isAuto(r)) {
        // The names end in the stored format's extension: the format served replaces it.
        const stored = '.' + storedObject(parts.signed).split('.').pop();
        const served = '.' + representation(r).split('.').pop();
        exactName = withExtension(exactName, stored, served);
        fallback = withExtension(fallback, stored, served);
    }
    return 'inline; filename="' + fallback + '"; filename*=UTF-8\'\'' + exactName;
}

function withExtension(name, stored, served) {
    return name.endsWith(stored) ? name.slice(0, name.length - stored.length) + served : name;
}

export default {verdict, cacheControl, disposition, representation, vary};
