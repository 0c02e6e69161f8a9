// The upload form: files picked or dropped, sent one after the other with a progress bar of the
// bytes sent, each then followed to its result in the list of uploads.

import { byId, element } from "./dom.js";

/** One line of the list of uploads: the file, its progress bar, its status in words. */
class UploadLine {
  constructor(file) {
    this.progress = element("progress", { max: file.size || 1, value: 0, "aria-label": `Upload of ${file.name}` });
    this.status = element("span", { className: "queue-status" }, "waiting");
    this.node = element("li", {}, element("span", { className: "queue-name" }, file.name), this.progress, this.status);
  }

  sent(loaded, total) {
    this.progress.max = total;
    this.progress.value = loaded;
    this.status.textContent = `sending, ${Math.floor((100 * loaded) / total)}%`;
  }

  say(text, kind = "") {
    this.status.textContent = text;
    this.node.className = kind;
  }
}

export class Uploads {
  /**
   * `request()` gives {operations, variants} of the form as it is now; `onAccepted(image)` is
   * told of each image the API took (202), `onError(error)` of each refusal.
   */
  constructor({ api, request, onAccepted, onError }) {
    this.api = api;
    this.request = request;
    this.onAccepted = onAccepted;
    this.onError = onError;
    this.input = byId("upload-file");
    this.queue = byId("queue");
    this.lines = new Map();
    byId("upload-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.send([...this.input.files]);
    });
    this.acceptDrops(byId("drop"));
  }

  /** Dropped files become the input's own, so that picking and dropping are one path. */
  acceptDrops(zone) {
    zone.addEventListener("dragover", (event) => {
      event.preventDefault();
      zone.classList.add("dragging");
    });
    zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      zone.classList.remove("dragging");
      if (event.dataTransfer?.files.length) this.input.files = event.dataTransfer.files;
    });
  }

  async send(files) {
    if (files.length === 0) {
      this.onError(new Error("Pick or drop an image first."));
      this.input.focus();
      return;
    }
    const request = this.request();
    this.input.value = "";  // a second click on Upload must not send the same files again
    const lines = files.map((file) => {
      const line = new UploadLine(file);
      this.queue.prepend(line.node);
      return [file, line];
    });
    for (const [file, line] of lines) {
      try {
        const { image } = await this.api.upload(file, request, (loaded, total) => line.sent(loaded, total));
        line.progress.value = line.progress.max;
        line.say(image.status);
        this.lines.set(image.id, line);
        this.onAccepted(image);
      } catch (error) {
        line.say(`refused: ${error.message}`, "refused");
        this.onError(error);
      }
    }
  }

  /** The long-poll's news of an image sent from here. */
  update(image) {
    const line = this.lines.get(image.id);
    if (!line) return;
    if (image.status === "failed") line.say(`failed: ${image.error?.message || "unknown error"}`, "refused");
    else line.say(image.status, image.status === "completed" ? "done" : "");
  }

  clear() {
    this.lines.clear();
    this.queue.replaceChildren();
    this.input.value = "";
  }
}
