"""The benchmarks' HTTP client: aiohttp (asyncio), so one process can hold thousands of requests.

Every request goes to 127.0.0.1 only. Times are `time.time()` (wall clock, the clock the services'
log timestamps use) taken when the whole response body has arrived.
"""
import asyncio
import json
import time
import uuid

import aiohttp

FINAL = ("completed", "failed")


def new_session(limit=0, timeout=120):
    """A session without a connection cap (limit=0) and without keep-alive reuse limits."""
    connector = aiohttp.TCPConnector(limit=limit, force_close=False, ttl_dns_cache=None)
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout))


async def make_user(session, gateway, password="bench password 1"):
    """Signs a new user up and logs in; returns (token, user_id)."""
    email = f"bench-{uuid.uuid4().hex[:12]}@example.com"
    async with session.post(f"{gateway}/api/users/signup",
                            json={"name": "Bench", "email": email, "password": password}) as response:
        body = await response.json(content_type=None)
        if response.status != 201:
            raise RuntimeError(f"signup: {response.status} {body}")
        user_id = body["user"]["id"]
    token = await login(session, gateway, email, password)
    return token, user_id, email


async def login(session, gateway, email, password="bench password 1"):
    async with session.post(f"{gateway}/api/users/login", json={"email": email, "password": password}) as response:
        body = await response.json(content_type=None)
        if response.status != 200:
            raise RuntimeError(f"login: {response.status} {body}")
        return body["access_token"]


def auth(token):
    return {"Authorization": f"Bearer {token}"}


async def upload(session, gateway, token, data, operations, filename="photo.jpg", content_type="image/jpeg",
                 variants=None):
    """POST /api/images/upload (`operations` None: not sent; `variants`: {name: operations or
    preset}); returns (status, body or None, error text or None, t_sent, t_done)."""
    form = aiohttp.FormData()
    form.add_field("image", data, filename=filename, content_type=content_type)
    if operations is not None:
        form.add_field("operations", json.dumps(operations))
    if variants is not None:
        form.add_field("variants", json.dumps(variants))
    t_sent = time.time()
    try:
        async with session.post(f"{gateway}/api/images/upload", data=form, headers=auth(token)) as response:
            raw = await response.read()
            t_done = time.time()
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            return response.status, body, None if body is not None else raw[:200].decode(errors="replace"), t_sent, t_done
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        return None, None, f"{type(exc).__name__}: {exc}", t_sent, time.time()


async def completed_image(session, gateway, token, data, operations, variants=None):
    """Uploads once and long-polls until `completed`; returns (image id, t_sent, t_accepted, t_seen).
    Anything else (a refusal, a failed image) raises: a benchmark measures only what worked."""
    code, body, error, t_sent, t_accepted = await upload(session, gateway, token, data, operations, variants=variants)
    if code != 202:
        raise RuntimeError(f"upload to {gateway} answered {code}: {body or error}")
    image_id = body["image"]["id"]
    final, t_seen = await wait_final(session, gateway, token, image_id, wait=60)
    if final.get("status") != "completed":
        raise RuntimeError(f"image {image_id} on {gateway} ended {final}")
    return image_id, t_sent, t_accepted, t_seen


async def status(session, gateway, token, image_id, wait=0):
    """GET /api/images/status/<id>?wait=N; returns (http status, body, t_done)."""
    async with session.get(f"{gateway}/api/images/status/{image_id}", params={"wait": str(wait)},
                           headers=auth(token)) as response:
        body = await response.json(content_type=None)
        return response.status, body, time.time()


async def wait_final(session, gateway, token, image_id, wait=60, deadline_s=180):
    """Long-polls until the image is completed or failed; returns (body, time it was seen final)."""
    end = time.monotonic() + deadline_s
    while True:
        code, body, t_done = await status(session, gateway, token, image_id, wait=wait)
        if code == 200 and body.get("status") in FINAL:
            return body, t_done
        if code != 200 and code != 504:
            raise RuntimeError(f"status {image_id}: {code} {body}")
        if time.monotonic() > end:
            return body, None


async def timed_get(session, url, headers=None):
    """(latency s, http status or exception name)."""
    started = time.perf_counter()
    try:
        async with session.get(url, headers=headers) as response:
            await response.read()
            return time.perf_counter() - started, response.status
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        return time.perf_counter() - started, type(exc).__name__


async def probe_loop(session, url, stop, interval=0.1, headers=None):
    """GETs `url` every `interval` s until `stop` is set; returns [(t, latency, status)]. A fresh
    connection each time would measure connect too; this reuses one keep-alive connection, as a
    monitoring probe would (nginx and nameko's server both keep connections alive)."""
    samples = []
    while not stop.is_set():
        t = time.time()
        latency, code = await timed_get(session, url, headers)
        samples.append((t, latency, code))
        try:
            await asyncio.wait_for(stop.wait(), timeout=max(0.0, interval - latency))
        except asyncio.TimeoutError:
            pass
    return samples
