// Live status of images still being processed, from the long-poll
// (GET /api/images/status/<id>?wait=N answers as soon as the image is done).
//
// A browser opens at most six connections to one host over HTTP/1.1, and each long-poll holds
// one for up to WAIT_SECONDS: a handful of slots is followed at a time, oldest first, so uploads
// and the gallery always have connections left.

import { ApiError } from "./api.js";

const WAIT_SECONDS = 25;
const SLOTS = 3;
const RETRY_MILLISECONDS = 2000;
const FINAL = new Set(["completed", "failed"]);

export function isFinal(status) {
  return FINAL.has(status);
}

function pause(milliseconds, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, milliseconds);
    signal.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
  });
}

export class Follower {
  /**
   * `onStatus(id, answer)` gets every answer of the long-poll; `onGone(id)` an image deleted
   * meanwhile; `onError(error)` an error that ends the following (a 401: the session ended).
   */
  constructor(api, { onStatus, onGone, onError }) {
    this.api = api;
    this.onStatus = onStatus;
    this.onGone = onGone;
    this.onError = onError;
    this.waiting = [];
    this.followed = new Set();
    this.busy = 0;
    this.controller = new AbortController();
  }

  follow(id) {
    if (this.followed.has(id)) return;
    this.followed.add(id);
    this.waiting.push(id);
    this.next();
  }

  /** Stops every long-poll (logging out). */
  stop() {
    this.controller.abort();
    this.controller = new AbortController();
    this.waiting = [];
    this.followed.clear();
    this.busy = 0;
  }

  next() {
    while (this.busy < SLOTS && this.waiting.length > 0) {
      const id = this.waiting.shift();
      this.busy += 1;
      const { signal } = this.controller;
      this.poll(id, signal).finally(() => {
        if (signal.aborted) return;
        this.busy -= 1;
        this.followed.delete(id);
        this.next();
      });
    }
  }

  async poll(id, signal) {
    while (!signal.aborted) {
      try {
        const answer = await this.api.status(id, WAIT_SECONDS, signal);
        if (signal.aborted) return;
        this.onStatus(id, answer);
        if (isFinal(answer.status)) return;
      } catch (error) {
        if (signal.aborted || error.name === "AbortError") return;
        if (error instanceof ApiError && error.status === 404) {
          this.onGone(id);
          return;
        }
        if (error instanceof ApiError && error.status === 401) {
          this.onError(error);
          return;
        }
        // The gateway restarting, a 503 while a server is down: try again, a little later.
        await pause(RETRY_MILLISECONDS, signal);
      }
    }
  }
}
