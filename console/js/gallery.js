// The gallery: the user's images, newest first, a page at a time (GET /api/images with its
// cursor). Thumbnails come from signed URLs (contract "Delivery"): plain <img> tags, no token.

import { element } from "./dom.js";
import { isFinal } from "./follow.js";
import { dimensions } from "./format.js";

const PAGE_SIZE = 12;

/** The signed URL of the smallest output: the thumbnail preset when it was asked for. */
export function thumbnailUrl(image) {
  const outputs = Object.values(image.variants || {});
  if (outputs.length === 0) return image.output?.url || null;
  const smallest = outputs.reduce((best, each) => (each.width * each.height < best.width * best.height ? each : best));
  return smallest.url;
}

function statusLine(image) {
  if (image.status === "completed" && image.output) return `${dimensions(image.output)} ${image.output.format}`;
  if (image.status === "failed") return `failed: ${image.error?.message || "unknown error"}`;
  return image.status;
}

export class Gallery {
  /** `onOpen(image)`: a card was chosen; `onPending(image)`: a card still waits for its result. */
  constructor({ list, empty, more, api, onOpen, onPending, onError }) {
    this.list = list;
    this.empty = empty;
    this.more = more;
    this.api = api;
    this.onOpen = onOpen;
    this.onPending = onPending;
    this.onError = onError;
    this.cards = new Map();
    this.cursor = null;
    this.more.addEventListener("click", () => this.loadPage());
  }

  clear() {
    this.cards.clear();
    this.list.replaceChildren();
    this.cursor = null;
    this.more.hidden = true;
    this.empty.hidden = true;
  }

  async reload() {
    this.clear();
    await this.loadPage();
  }

  async loadPage() {
    const moreHadFocus = document.activeElement === this.more;
    try {
      const page = await this.api.listImages(this.cursor, PAGE_SIZE);
      for (const image of page.images) this.place(image, "end");
      this.cursor = page.next_cursor || null;
      this.more.hidden = !this.cursor;
      this.updateEmpty();
      // "Show more" with the keyboard: go on from the first new card, not from a hidden button.
      const firstNew = page.images[0] && this.cards.get(page.images[0].id);
      if (moreHadFocus && firstNew) firstNew.node.querySelector("button").focus();
    } catch (error) {
      this.onError(error);
    }
  }

  /** Focuses the first card; false when there is none. */
  focus() {
    const first = this.list.querySelector("button");
    if (first) first.focus();
    return Boolean(first);
  }

  /** A new upload goes first (newest first); a known image is redrawn where it is. */
  show(image) {
    this.place(image, "start");
    this.updateEmpty();
  }

  remove(id) {
    this.cards.get(id)?.node.remove();
    this.cards.delete(id);
    this.updateEmpty();
  }

  image(id) {
    return this.cards.get(id)?.image;
  }

  place(image, where) {
    const card = this.card(image);
    const known = this.cards.get(image.id);
    if (known) known.node.replaceWith(card);
    else if (where === "start") this.list.prepend(card);
    else this.list.append(card);
    this.cards.set(image.id, { image, node: card });
    if (!isFinal(image.status)) this.onPending(image);
  }

  card(image) {
    const url = image.status === "completed" ? thumbnailUrl(image) : null;
    // The image's alt is its file name: the card's name then needs no second copy of it.
    const picture = url
      ? element("img", { src: url, alt: image.original_filename, loading: "lazy", decoding: "async" })
      : element("span", { className: `placeholder ${image.status}` }, image.original_filename);
    // Shown to the eye; a screen reader has it once already, from the alt.
    const name = url ? element("span", { className: "card-name", "aria-hidden": "true" }, image.original_filename) : null;
    const button = element("button", { type: "button", className: "card" },
      picture, name, element("span", { className: "card-status" }, statusLine(image)));
    button.addEventListener("click", () => this.onOpen(this.cards.get(image.id)?.image || image));
    return element("li", { "data-image-id": image.id }, button);
  }

  updateEmpty() {
    this.empty.hidden = this.cards.size > 0;
  }
}
