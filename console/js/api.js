// The public API, as any client uses it: JSON over fetch, Bearer tokens, the contract's error
// envelope. Uploads go through XMLHttpRequest, the one browser API that reports bytes sent.

/** An answer outside 2xx, with the contract's `{"error": {"code", "message", "details"}}`. */
export class ApiError extends Error {
  constructor(status, code, message, details = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

const UNREACHABLE = "The gateway could not be reached; check that the suite is running.";

/** The error of a non-2xx answer: its JSON message, or a plain sentence if it has none. */
function errorFrom(status, body) {
  const error = body && typeof body === "object" ? body.error : null;
  if (error && typeof error.message === "string") {
    return new ApiError(status, error.code, error.message, error.details || {});
  }
  return new ApiError(status, "unexpected_answer", `The gateway answered ${status} without an explanation.`);
}

function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

export class Api {
  /** `token()` is asked on every request, so a logout takes effect at once. */
  constructor(token) {
    this.token = token;
  }

  headers(extra = {}) {
    const token = this.token();
    return token ? { ...extra, Authorization: `Bearer ${token}` } : extra;
  }

  async request(method, path, { json, signal } = {}) {
    let response;
    try {
      response = await fetch(path, {
        method,
        signal,
        headers: this.headers(json === undefined ? {} : { "Content-Type": "application/json" }),
        body: json === undefined ? undefined : JSON.stringify(json),
      });
    } catch (error) {
      if (error.name === "AbortError") throw error;
      throw new ApiError(0, "unreachable", UNREACHABLE);
    }
    if (response.status === 204) return null;
    const body = parseJson(await response.text());
    if (!response.ok) throw errorFrom(response.status, body);
    return body;
  }

  signUp(name, email, password) {
    return this.request("POST", "/api/users/signup", { json: { name, email, password } });
  }

  logIn(email, password) {
    return this.request("POST", "/api/users/login", { json: { email, password } });
  }

  me() {
    return this.request("GET", "/api/users/me");
  }

  logOut() {
    return this.request("POST", "/api/users/logout");
  }

  /** The OpenAPI document: its `components.schemas.Operations` drives the pipeline forms. */
  openApi() {
    return this.request("GET", "/api/openapi.json");
  }

  presets() {
    return this.request("GET", "/api/presets");
  }

  listImages(cursor, limit) {
    const query = new URLSearchParams({ limit: String(limit) });
    if (cursor) query.set("cursor", cursor);
    return this.request("GET", `/api/images?${query}`);
  }

  image(id) {
    return this.request("GET", `/api/images/${encodeURIComponent(id)}`);
  }

  /** Long-poll: answers once the image is done, or after `wait` seconds with its status then. */
  status(id, wait, signal) {
    return this.request("GET", `/api/images/status/${encodeURIComponent(id)}?wait=${wait}`, { signal });
  }

  deleteImage(id) {
    return this.request("DELETE", `/api/images/${encodeURIComponent(id)}`);
  }

  /**
   * POST /api/images/upload (multipart: `image`, and `operations` / `variants` as JSON text).
   * `onProgress(sent, total)` follows the bytes of the body as they leave the browser.
   */
  upload(file, { operations, variants }, onProgress) {
    const form = new FormData();
    form.append("image", file, file.name);
    if (operations) form.append("operations", JSON.stringify(operations));
    if (variants) form.append("variants", JSON.stringify(variants));
    return new Promise((resolve, reject) => {
      const request = new XMLHttpRequest();
      request.open("POST", "/api/images/upload");
      for (const [name, value] of Object.entries(this.headers())) request.setRequestHeader(name, value);
      request.upload.addEventListener("progress", (event) => {
        if (event.lengthComputable) onProgress(event.loaded, event.total);
      });
      request.addEventListener("load", () => {
        const body = parseJson(request.responseText);
        if (request.status >= 200 && request.status < 300) resolve(body);
        else reject(errorFrom(request.status, body));
      });
      request.addEventListener("error", () => reject(new ApiError(0, "unreachable", UNREACHABLE)));
      request.send(form);
    });
  }
}
