// Keyboard shortcuts for the dashboard: one registry, one help overlay ("?").
//
// Each part of the page registers its own keys:
//   window.deskKeys.register({ key: "j", label: "Next conversation", group: "List", handler })
// `key` is what KeyboardEvent.key gives ("j", "Enter", "/", "?"), optionally prefixed with
// "mod+" (Ctrl, or Cmd on a Mac) or "shift+" for letters ("shift+A"). A handler returns false
// to let the key through (the key did not apply here); anything else consumes it.
// While the agent types in a field only "Escape" and "mod+…" keys are handled: a letter typed
// into the composer is text, never a command. An optional `rank` orders a key in its group of
// the overlay (lower first; unranked keys follow, in registration order).

const bindings = new Map(); // normalised key -> [binding, …] (several parts may share a key)
const order = []; // for the overlay, in registration order

function normalise(key) {
  const parts = key.split("+");
  const base = parts.pop();
  const mods = new Set(parts.map((p) => p.toLowerCase()));
  const name = base.length === 1 ? base.toLowerCase() : base;
  return `${mods.has("mod") ? "mod+" : ""}${mods.has("shift") ? "shift+" : ""}${name}`;
}

function keyOf(event) {
  const mod = event.ctrlKey || event.metaKey;
  const letter = event.key.length === 1 && /[a-z]/i.test(event.key);
  // Shift matters for letters only: "?" already is shift+/ on most layouts.
  const shift = event.shiftKey && letter;
  const name = event.key.length === 1 ? event.key.toLowerCase() : event.key;
  return `${mod ? "mod+" : ""}${shift ? "shift+" : ""}${name}`;
}

function typingIn(target) {
  if (!(target instanceof Element)) return false;
  return Boolean(target.closest("input, textarea, select, [contenteditable=''], [contenteditable=true]"));
}

function register({ key, label, group = "General", handler, rank = null }) {
  const binding = { key, label, group, handler, rank: rank ?? 1000 + order.length };
  const id = normalise(key);
  if (!bindings.has(id)) bindings.set(id, []);
  bindings.get(id).push(binding);
  if (label) order.push(binding);
  return binding;
}

document.addEventListener("keydown", (event) => {
  if (event.defaultPrevented || event.isComposing || event.altKey) return;
  const id = keyOf(event);
  // The help overlay is modal: behind it only "?" (to close it) applies; Esc is the dialog's.
  if (overlay()?.open && id !== "?") return;
  if (typingIn(event.target) && !id.startsWith("mod+") && id !== "Escape") return;
  const candidates = bindings.get(id);
  if (!candidates) return;
  // The latest registration wins, so a part of the page can take a key over while it is shown.
  for (const binding of [...candidates].reverse()) {
    if (binding.handler(event) !== false) {
      event.preventDefault();
      return;
    }
  }
});

// The help overlay -------------------------------------------------------------------------

function label(key) {
  const mac = /Mac|iPhone|iPad/.test(navigator.platform);
  return key.split("+").map((part) => {
    if (part === "mod") return mac ? "⌘" : "Ctrl";
    if (part === "shift") return "Shift";
    if (part === "Escape") return "Esc";
    if (part === "ArrowUp") return "↑";
    if (part === "ArrowDown") return "↓";
    return part.length === 1 ? part.toUpperCase() : part;
  });
}

// Groups in the overlay: these first, in this order, then any other, "General" last.
const GROUP_ORDER = ["List", "Conversation"];

function groupRank(group) {
  if (group === "General") return GROUP_ORDER.length + 1;
  const index = GROUP_ORDER.indexOf(group);
  return index < 0 ? GROUP_ORDER.length : index;
}

function overlay() {
  return document.getElementById("keys-help");
}

function showHelp() {
  let dialog = overlay();
  if (!dialog) {
    dialog = document.createElement("dialog");
    dialog.id = "keys-help";
    dialog.className = "keys-help";
    dialog.dataset.testid = "keys-help";
    dialog.setAttribute("aria-labelledby", "keys-help-title");
    document.body.append(dialog);
  }
  const title = Object.assign(document.createElement("h2"), { id: "keys-help-title", textContent: "Keyboard shortcuts" });
  const groups = new Map();
  for (const binding of order) {
    if (!groups.has(binding.group)) groups.set(binding.group, []);
    groups.get(binding.group).push(binding);
  }
  const sections = [...groups].sort(([a], [b]) => groupRank(a) - groupRank(b)).map(([group, unsorted]) => {
    const items = [...unsorted].sort((a, b) => a.rank - b.rank);
    const section = document.createElement("section");
    section.append(Object.assign(document.createElement("h3"), { textContent: group }));
    const list = document.createElement("dl");
    for (const item of items) {
      const keys = document.createElement("dt");
      for (const part of label(item.key)) keys.append(Object.assign(document.createElement("kbd"), { textContent: part }));
      list.append(keys, Object.assign(document.createElement("dd"), { textContent: item.label }));
    }
    section.append(list);
    return section;
  });
  const close = Object.assign(document.createElement("button"), { type: "button", className: "btn btn-small", textContent: "Close" });
  close.addEventListener("click", () => dialog.close());
  dialog.replaceChildren(title, ...sections, close);
  if (!dialog.open) dialog.showModal();
}

register({ key: "?", label: "Show these shortcuts", group: "General", handler: () => { if (overlay()?.open) overlay().close(); else showHelp(); } });

window.deskKeys = { register, showHelp };
