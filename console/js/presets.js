// The presets of GET /api/presets, offered as check boxes: each one picked becomes a variant of
// the upload named after it (`variants: {"thumbnail": "thumbnail"}`).

import { element, uniqueId } from "./dom.js";

function describe(operations) {
  return operations
    .map(({ type, ...fields }) => `${type} ${Object.entries(fields).map(([name, value]) => `${name} ${value}`).join(", ")}`.trim())
    .join("; then ");
}

export class Presets {
  constructor(container) {
    this.container = container;
    this.boxes = [];
  }

  offer(presets) {
    this.boxes = [];
    const choices = Object.entries(presets).map(([name, operations]) => {
      const id = uniqueId(`preset-${name}`);
      const box = element("input", { id, type: "checkbox", value: name });
      const hint = element("span", { className: "hint", id: `${id}-hint` }, describe(operations));
      box.setAttribute("aria-describedby", hint.id);
      this.boxes.push(box);
      return element("p", { className: "field inline" }, box, element("label", { for: id }, name), hint);
    });
    this.container.replaceChildren(...choices);
  }

  /** The `variants` object of the picked presets, or undefined when none is picked. */
  value() {
    const picked = this.boxes.filter((box) => box.checked).map((box) => [box.value, box.value]);
    return picked.length ? Object.fromEntries(picked) : undefined;
  }
}
