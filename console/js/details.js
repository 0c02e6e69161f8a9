// One image in a modal <dialog> (keyboard: focus stays inside, Escape closes): each variant with
// its size and format, its signed URL to copy, and Delete (asked twice).

import { byId, element, uniqueId } from "./dom.js";
import { bytes, dateTime, dimensions } from "./format.js";

/** Name -> output: the variants, or the one output of an upload without variants. */
function outputsOf(image) {
  if (image.variants && Object.keys(image.variants).length > 0) return Object.entries(image.variants);
  return image.output ? [["default", image.output]] : [];
}

function summary(image) {
  const original = `Original: ${dimensions(image)} ${image.format}, ${bytes(image.size_bytes)}.`;
  const uploaded = `Uploaded ${dateTime(image.created_at)}.`;
  if (image.status === "failed") return `${original} ${uploaded} Failed: ${image.error?.message || "unknown error"}`;
  if (image.status !== "completed") return `${original} ${uploaded} Status: ${image.status}.`;
  return `${original} ${uploaded}`;
}

async function copy(input, button) {
  try {
    await navigator.clipboard.writeText(input.value);
    button.textContent = "Copied";
  } catch {
    // No clipboard permission: leave the URL selected for Ctrl+C.
    input.select();
    button.textContent = "Press Ctrl+C";
  }
  setTimeout(() => { button.textContent = "Copy"; }, 2000);
}

function variantFigure(image, name, output) {
  const url = new URL(output.url, window.location.origin).href;
  const id = uniqueId("signed-url");
  const input = element("input", { id, type: "text", readOnly: true, value: url, className: "url" });
  const button = element("button", { type: "button", className: "secondary small", "aria-label": `Copy the signed URL of ${name}` }, "Copy");
  button.addEventListener("click", () => copy(input, button));
  const formats = (output.formats || []).map((each) => `${each.format} ${bytes(each.size_bytes)}`).join(", ");
  return element("figure", { className: "variant" },
    element("img", { src: output.url, alt: `${image.original_filename}, variant ${name}` }),
    element("figcaption", {},
      element("h3", {}, name),
      element("p", {}, `${dimensions(output)}, ${output.format}, ${bytes(output.size_bytes)}`),
      formats ? element("p", { className: "hint" }, `Served as the smallest the browser accepts of: ${formats}.`) : null,
      element("p", { className: "field" },
        element("label", { for: id }, `Signed URL of ${name}`),
        element("span", { className: "url-row" }, input, button))));
}

export class Details {
  /**
   * `onDelete(image)` resolves to whether the image was deleted; the dialog then closes and
   * `onDeleted()` says where the focus goes.
   */
  constructor({ onDelete, onDeleted }) {
    this.dialog = byId("details");
    this.title = byId("details-title");
    this.summary = byId("details-summary");
    this.variants = byId("details-variants");
    this.image = null;
    this.deleteButton = byId("details-delete");
    this.confirmation = byId("details-confirm");
    this.keepButton = byId("details-confirm-keep");
    byId("details-close").addEventListener("click", () => this.close());
    this.dialog.addEventListener("close", () => this.hideQuestion());  // Escape too
    this.deleteButton.addEventListener("click", () => this.askToDelete());
    this.keepButton.addEventListener("click", () => {
      this.hideQuestion();
      this.deleteButton.focus();
    });
    byId("details-confirm-delete").addEventListener("click", async () => {
      if (this.image && (await onDelete(this.image))) {
        this.close();
        onDeleted();
      }
    });
  }

  askToDelete() {
    byId("details-confirm-question").textContent =
      `Delete ${this.image.original_filename} and all its variants? This cannot be undone.`;
    this.deleteButton.hidden = true;
    this.confirmation.hidden = false;
    this.keepButton.focus();
  }

  hideQuestion() {
    this.confirmation.hidden = true;
    this.deleteButton.hidden = false;
  }

  get isOpen() {
    return this.dialog.open;
  }

  open(image) {
    this.show(image);
    if (!this.dialog.open) this.dialog.showModal();
  }

  /** Redraws the open dialog when its image changes (processing ended). */
  refresh(image) {
    if (this.dialog.open && this.image?.id === image.id) this.show(image);
  }

  show(image) {
    if (this.image?.id !== image.id) this.hideQuestion();
    this.image = image;
    this.title.textContent = image.original_filename;
    this.summary.textContent = summary(image);
    this.variants.replaceChildren(...outputsOf(image).map(([name, output]) => variantFigure(image, name, output)));
  }

  close() {
    this.dialog.close();
  }
}
