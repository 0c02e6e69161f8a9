// The pipeline builder: one form per operation, written from the JSON Schema the API publishes
// (`components.schemas.Operations` of /api/openapi.json, generated from imaging/operations.py).
// A new operation, parameter or range appears here without a line of console code.
//
// Fields left empty are not sent, so the API's defaults apply; nothing is validated here: the
// API is the one judge, and its message is what the person reads.

import { element, uniqueId } from "./dom.js";

/** [{name, description, params: [{name, schema, required}]}] in the order the API lists them. */
export function operationsFromOpenApi(document) {
  const variants = document?.components?.schemas?.Operations?.items?.oneOf;
  if (!Array.isArray(variants)) throw new Error("the API's OpenAPI document has no Operations schema");
  return variants.map((schema) => {
    const required = new Set(schema.required || []);
    const params = Object.entries(schema.properties || {})
      .filter(([name]) => name !== "type")
      .map(([name, paramSchema]) => ({ name, schema: paramSchema, required: required.has(name) }));
    return { name: schema.properties.type.const ?? schema.title, description: schema.description || "", params };
  });
}

/** A sentence on what a parameter accepts, from its schema: "integer, 1 to 10000, default 2". */
function describe(param) {
  const { schema } = param;
  const parts = [param.required ? "required" : "optional"];
  if (schema.type && !schema.enum) parts.push(schema.type);
  if (schema.minimum !== undefined && schema.maximum !== undefined) parts.push(`${schema.minimum} to ${schema.maximum}`);
  else if (schema.minimum !== undefined) parts.push(`at least ${schema.minimum}`);
  else if (schema.maximum !== undefined) parts.push(`at most ${schema.maximum}`);
  if (schema.maxLength !== undefined) parts.push(`up to ${schema.maxLength} characters`);
  if (schema.default !== undefined) parts.push(`default ${schema.default}`);
  const text = parts.join(", ");
  return schema.description ? `${text}. ${schema.description}` : text;
}

/** One control for one parameter, and how to read its value (undefined: leave it out). */
function control(param, id) {
  const { schema } = param;
  if (Array.isArray(schema.enum)) {
    const select = element("select", { id });
    if (!param.required) select.append(element("option", { value: "" }, "(default)"));
    for (const choice of schema.enum) select.append(element("option", { value: String(choice) }, String(choice)));
    return { input: select, read: () => (select.value === "" ? undefined : select.value) };
  }
  if (schema.type === "boolean") {
    const box = element("input", { id, type: "checkbox", checked: schema.default === true });
    return { input: box, read: () => box.checked };
  }
  if (schema.type === "integer" || schema.type === "number") {
    const number = element("input", {
      id,
      type: "number",
      inputMode: schema.type === "integer" ? "numeric" : "decimal",
      step: schema.type === "integer" ? "1" : "any",
      min: schema.minimum,
      max: schema.maximum,
      placeholder: schema.default === undefined ? "" : String(schema.default),
    });
    return { input: number, read: () => (number.value === "" ? undefined : Number(number.value)) };
  }
  const text = element("input", {
    id,
    type: "text",
    placeholder: schema.default === undefined ? "" : String(schema.default),
  });
  return { input: text, read: () => (text.value === "" ? undefined : text.value) };
}

/** One step of the pipeline: a fieldset named after its operation, with its fields. */
class Step {
  constructor(operation, pipeline) {
    this.operation = operation;
    this.legend = element("legend");
    this.readers = [];
    const fields = operation.params.map((param) => {
      const id = uniqueId(`step-${operation.name}-${param.name}`);
      const { input, read } = control(param, id);
      const hint = element("span", { className: "hint", id: `${id}-hint` }, describe(param));
      input.setAttribute("aria-describedby", hint.id);
      this.readers.push([param.name, read]);
      return element("p", { className: param.schema.type === "boolean" ? "field inline" : "field" },
        element("label", { for: id }, param.name), input, hint);
    });
    this.up = element("button", { type: "button", className: "secondary small" }, "Move up");
    this.down = element("button", { type: "button", className: "secondary small" }, "Move down");
    this.remove = element("button", { type: "button", className: "secondary small" }, "Remove");
    this.up.addEventListener("click", () => pipeline.move(this, -1));
    this.down.addEventListener("click", () => pipeline.move(this, +1));
    this.remove.addEventListener("click", () => pipeline.remove(this));
    const description = operation.description ? element("p", { className: "hint" }, operation.description) : null;
    this.node = element("li", {},
      element("fieldset", { className: "step" }, this.legend, description, ...fields,
        element("p", { className: "step-actions" }, this.up, this.down, this.remove)));
  }

  /** Its position, for the legend and for the buttons' accessible names. */
  number(position, count) {
    const label = `Step ${position}: ${this.operation.name}`;
    this.legend.textContent = label;
    this.up.setAttribute("aria-label", `Move ${label} up`);
    this.down.setAttribute("aria-label", `Move ${label} down`);
    this.remove.setAttribute("aria-label", `Remove ${label}`);
    this.up.disabled = position === 1;
    this.down.disabled = position === count;
  }

  value() {
    const operation = { type: this.operation.name };
    for (const [name, read] of this.readers) {
      const value = read();
      if (value !== undefined) operation[name] = value;
    }
    return operation;
  }

  focus() {
    (this.node.querySelector("input, select") || this.remove).focus();
  }
}

export class Pipeline {
  constructor({ list, choice, addButton }) {
    this.list = list;
    this.choice = choice;
    this.steps = [];
    this.operations = new Map();
    addButton.addEventListener("click", () => this.add(this.choice.value));
  }

  /** The catalogue the API publishes; the menu of "Add step". */
  offer(operations) {
    this.operations = new Map(operations.map((operation) => [operation.name, operation]));
    this.choice.replaceChildren(...operations.map((operation) => element("option", { value: operation.name }, operation.name)));
  }

  add(name) {
    const operation = this.operations.get(name);
    if (!operation) return;
    const step = new Step(operation, this);
    this.steps.push(step);
    this.list.append(step.node);
    this.renumber();
    step.focus();
  }

  move(step, offset) {
    const from = this.steps.indexOf(step);
    const to = from + offset;
    if (to < 0 || to >= this.steps.length) return;
    this.steps.splice(from, 1);
    this.steps.splice(to, 0, step);
    this.list.replaceChildren(...this.steps.map((each) => each.node));
    this.renumber();
    // Keep the keyboard where it was; at either end that button is disabled, so Remove takes it.
    const button = offset < 0 ? step.up : step.down;
    (button.disabled ? step.remove : button).focus();
  }

  remove(step) {
    const index = this.steps.indexOf(step);
    this.steps.splice(index, 1);
    step.node.remove();
    this.renumber();
    const next = this.steps[Math.min(index, this.steps.length - 1)];
    if (next) next.remove.focus();
    else this.choice.focus();
  }

  renumber() {
    this.steps.forEach((step, index) => step.number(index + 1, this.steps.length));
  }

  /** The `operations` array of an upload; empty when no step was added. */
  value() {
    return this.steps.map((step) => step.value());
  }
}
