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
// authenticated download (its ETag, Last-Modified, Range, HEAD, 304), with the headers set here.
//
// `formats` (an output made with `"format": "auto"`) lists the extensions of the same output in
// other formats, stored beside it, smallest first: the request gets the first one that is either
// the stored one (the fallback every client decodes) or named by its Accept header, with
// `Vary: Accept` so that caches keep one copy per answer.
//
// One call into njs per request (`route`, nginx.conf's $media_route) rather than one per js_set
// variable: a signed request is the gateway's hottest path (bench.delivery).

const crypto = require('crypto');

const SIGNATURE_PARAM = '&signature=';
const PARAMS = {
    expires: /[?&]expires=([^&]*)/,
    formats: /[?&]formats=([^&]*)/,
    ascii: /[?&]ascii=([^&]*)/,
};

// The formats a client must name explicitly in Accept to get them: browsers that decode AVIF or
// WebP say so; `*/*` and `image/*` (curl, mail clients, old browsers) name neither.
const NEGOTIATED_TYPES = {avif: 'image/avif', webp: 'image/webp'};

function param(signed, name) {
    const match = PARAMS[name].exec(signed);
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

function signedByAnyKey(keys, signed, signature) {
    let verified = false;
    for (let i = 0; i < keys.length; i++) {
        if (keys[i] === '') {
            continue;
        }
        const expected = crypto.createHmac('sha256', keys[i]).update(signed).digest('base64url');
        // Every key is tried: the time taken does not say which one matched.
        verified = sameText(expected, signature) || verified;
    }
    return verified;
}

// "ok", "invalid_signature" or "link_expired" of the signed part of a request URI.
function verdict(keys, uri, now) {
    const at = uri.lastIndexOf(SIGNATURE_PARAM);
    if (at < 0 || !signedByAnyKey(keys, uri.slice(0, at), uri.slice(at + SIGNATURE_PARAM.length))) {
        return 'invalid_signature';
    }
    const expires = param(uri.slice(0, at), 'expires');
    if (expires === null || !/^[0-9]{1,12}$/.test(expires)) {
        return 'invalid_signature';
    }
    return now >= Number(expires) ? 'link_expired' : 'ok';
}

// The media types that Accept names with a q above zero ("image/webp;q=0" refuses WebP).
function acceptedTypes(accept) {
    const accepted = {};
    (accept || '').split(',').forEach(function (range) {
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
// that the request accepts (`formats` is signed: ours).
function representation(object, formats, accept) {
    if (formats === null) {
        return object;
    }
    const dot = object.lastIndexOf('.');
    const stored = object.slice(dot + 1);
    const accepted = acceptedTypes(accept);
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

// RFC 6266: the readable ASCII fallback and the exact name (already percent-encoded as UTF-8 in
// the path, which is what filename* wants), both chosen by the minter and covered by the signature;
// their extension is the served format's.
function disposition(exactName, ascii, stored, served) {
    const fallback = decodeURIComponent(ascii || 'image').replace(/["\\\r\n]/g, '_');
    return 'inline; filename="' + withExtension(fallback, stored, served) + '"; filename*=UTF-8\'\''
        + withExtension(exactName, stored, served);
}

function withExtension(name, stored, served) {
    if (stored === served || !name.endsWith(stored)) {
        return name;
    }
    return name.slice(0, name.length - stored.length) + served;
}

function extensionOf(name) {
    return name.slice(name.lastIndexOf('.'));
}

// Where nginx sends a request for /media/<object>/<name>: the error location of a bad or expired
// link, else the store's location of the object to serve (`media_store` + object). The response
// headers go into js_var variables ($media_cache_control, $media_disposition, $media_vary), which
// the store's locations add; they stay empty for authenticated downloads.
function route(r) {
    const uri = r.variables.request_uri;
    const now = Date.now() / 1000;
    const checked = verdict(r.variables.media_signing_keys.split(','), uri, now);
    if (checked !== 'ok') {
        return '/_errors/' + checked;
    }
    const signed = uri.slice(0, uri.lastIndexOf(SIGNATURE_PARAM));
    const path = signed.split('?')[0].split('/');  // ['', 'media', <object>, <name>]
    const object = decodeURIComponent(path[2]);
    const formats = param(signed, 'formats');
    const served = representation(object, formats, r.headersIn['Accept']);
    // Never cached beyond the link's own life.
    r.variables.media_cache_control = 'public, max-age=' + Math.max(0, Math.floor(Number(param(signed, 'expires')) - now));
    r.variables.media_disposition = disposition(path[3], param(signed, 'ascii'), extensionOf(object), extensionOf(served));
    if (formats !== null) {
        r.variables.media_vary = 'Accept';  // the answer depends on it: caches keep one per answer
    }
    return r.variables.media_store + served;
}

export default {route};
