// Building DOM nodes without innerHTML: every text goes in as text, so API values cannot inject markup.

const SVG_NS = "http://www.w3.org/2000/svg";

function assign(el, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.setAttribute("class", Array.isArray(value) ? value.filter(Boolean).join(" ") : value);
    else if (key === "text") el.textContent = value;
    else if (key === "style") Object.assign(el.style, value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key in el && !(el instanceof SVGElement) && typeof value !== "string") el[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** h("button", {class: "primary", onclick}, "Save") */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  assign(el, attrs);
  return append(el, children);
}

/** The same for SVG elements. */
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  assign(el, attrs);
  return append(el, children);
}

export function clear(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** A labelled form field: <label><span>Label</span>control<small>hint</small></label>. */
export function field(label, control, hint) {
  return h("label", { class: "field" }, h("span", { class: "field-label" }, label), control,
    hint ? h("small", { class: "hint" }, hint) : null);
}

export function select(name, options, value) {
  return h("select", { name }, options.map((o) => {
    const [val, text] = Array.isArray(o) ? o : [o, o];
    return h("option", { value: val, selected: String(val) === String(value) }, text);
  }));
}

export function numberInput(name, value, { min, max, step, placeholder } = {}) {
  return h("input", { type: "number", name, value: value ?? "", min, max, step, placeholder, inputmode: "numeric" });
}

/** A button that shows it is busy while `action` runs and cannot be pressed twice. */
export function actionButton(label, action, attrs = {}) {
  const button = h("button", { type: "button", ...attrs }, label);
  button.addEventListener("click", async () => {
    if (button.disabled) return;
    button.disabled = true;
    button.classList.add("busy");
    try {
      await action(button);
    } finally {
      button.disabled = false;
      button.classList.remove("busy");
    }
  });
  return button;
}
