// Building page elements from data without innerHTML: names, subjects and questions come from
// participants, so they are only ever set as text.

/** `<tag attrs>children</tag>`; `class` sets className, `on<event>` functions become listeners,
 * `dataset` an object of data-* values; null/false children are skipped. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (key in node && typeof value !== "string") node[key] = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined && child !== false) node.append(child);
  }
  return node;
}

/**
 * A button that asks for a second click before doing something that cannot be undone (removing a
 * participant, ending every floor): no modal dialog, which a busy operator dismisses by reflex.
 */
export function confirmButton(label, confirmLabel, action, attrs = {}) {
  let armed = null;
  const button = el("button", { type: "button", ...attrs }, label);
  button.addEventListener("click", () => {
    if (!armed) {
      button.textContent = confirmLabel;
      button.dataset.armed = "true";
      armed = setTimeout(() => { armed = null; button.textContent = label; delete button.dataset.armed; }, 5000);
      return;
    }
    clearTimeout(armed);
    armed = null;
    button.textContent = label;
    delete button.dataset.armed;
    action();
  });
  return button;
}
