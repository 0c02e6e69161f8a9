// Building DOM nodes without HTML strings: text is always set as text (never parsed), so a file
// name or an API message can never become markup.

/**
 * element("p", {className: "hint"}, "text", otherNode): attributes are set as properties (so
 * `hidden`, `value`, `checked` work), except `aria-*`, `data-*` and `for`, set as attributes.
 */
export function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null) continue;
    if (name.startsWith("aria-") || name.startsWith("data-") || name === "for") {
      node.setAttribute(name, String(value));
    } else {
      node[name] = value;
    }
  }
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

export function byId(id) {
  const node = document.getElementById(id);
  if (!node) throw new Error(`the page has no #${id}`);
  return node;
}

/** Ids for generated fields, so that every <label for> points at exactly one control. */
let lastId = 0;
export function uniqueId(prefix) {
  lastId += 1;
  return `${prefix}-${lastId}`;
}
