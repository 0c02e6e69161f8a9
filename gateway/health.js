// The suite's readiness, as the gateway sees it: GET /healthz asks each service's own /healthz
// (through the internal locations /_health/<service>, all at once) and answers one report:
//   200 {"status": "ok", "failing": [], "services": {<name>: <its own report>}}
//   503 {"status": "unavailable", "failing": [<names>], "services": {...}}
// A service that cannot be reached, or answers anything but its JSON report, is failing with
// {"status": "unavailable", "error": "<why>"}. The gateway owns this view: it is the one
// component that reaches every service, and no service has to know about the others.

const SERVICES = ['user_service', 'upload_service', 'process_service', 'notification_service'];

function report(reply) {
    let body;
    try {
        body = JSON.parse(reply.responseText);
    } catch (e) {
        body = null;
    }
    if (body && typeof body.error === 'object' && body.error !== null) {
        // An error envelope (nginx's own page when the service is down): say why in one word.
        return {status: 'unavailable', error: String(body.error.code || ('HTTP ' + reply.status))};
    }
    if (!body || typeof body !== 'object' || typeof body.status !== 'string') {
        return {status: 'unavailable', error: 'HTTP ' + reply.status + ' without a report'};
    }
    if (reply.status !== 200) {
        body.status = 'unavailable';  // whatever it says, a service that is not 200 is not ready
    }
    return body;
}

async function suite(r) {
    const replies = await Promise.all(SERVICES.map(name => r.subrequest('/_health/' + name)));
    const services = {};
    const failing = [];
    SERVICES.forEach((name, index) => {
        services[name] = report(replies[index]);
        if (services[name].status !== 'ok') {
            failing.push(name);
        }
    });
    failing.sort();
    r.headersOut['Content-Type'] = 'application/json';
    r.headersOut['Cache-Control'] = 'no-store';
    r.return(failing.length ? 503 : 200, JSON.stringify({
        status: failing.length ? 'unavailable' : 'ok',
        failing: failing,
        services: services,
    }));
}

export default {suite, report};
