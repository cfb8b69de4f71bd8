// The list pane: filters, search, selection and bulk actions, list keys (see keys.js).
//
// desk.js fetches the list and swaps #conv-list (window.desk.refreshList); this module adds
// the pane's own parameters to that request (window.deskList.params()), keeps the agent's
// selection across refreshes, updates the tab counts from each fresh list's data-counts, and
// sends bulk actions to POST /bulk. No inline handlers: the dashboard runs under a strict CSP.

const SEARCH_DELAY_MS = 250;
const RESULT_SHOWN_MS = 6000;
const TAG = /^[-a-z0-9_]{1,60}$/;

const selection = new Set(); // conversation ids, as strings
let cursorId = null; // the row j/k moved to, until its conversation is on screen
let anchorId = null; // the last row ticked, for shift-click ranges
let searchTimer = null;
let resultTimer = null;

const desk = () => window.desk || {};
const listEl = () => document.getElementById("conv-list");
const rows = () => [...document.querySelectorAll("#conv-list > li.conv-item")];
const searchForm = () => document.getElementById("list-search");
const filterForm = () => document.getElementById("list-filters");
const bar = () => document.getElementById("bulk-bar");

function refresh() {
  if (desk().refreshList) desk().refreshList();
}

// What desk.js adds to the list URL -------------------------------------------------------
// One value per key (desk.js sets, not appends): several tags travel as one "tag" value,
// which the server splits at spaces and commas.

function params() {
  const out = [];
  const search = searchForm();
  const q = search ? search.elements.q.value.trim() : "";
  if (q) out.push(["q", q]);
  const filters = filterForm();
  if (!filters) return out;
  for (const [key, raw] of new FormData(filters)) {
    const value = String(raw).trim();
    if (key === "view" || !value) continue;
    // A tag the server would refuse (400) is left out rather than stall every refresh.
    out.push([key, key === "tag" ? value.toLowerCase().split(/[\s,]+/).filter((tag) => TAG.test(tag)).join(" ") : value]);
  }
  return out;
}

function filterError(text) {
  const error = filterForm() && filterForm().querySelector(".form-error");
  if (!error) return;
  error.textContent = text;
  error.hidden = !text;
}

function applyFilters() {
  const filters = filterForm();
  const tags = filters ? filters.elements.tag.value.toLowerCase().split(/[\s,]+/).filter(Boolean) : [];
  const bad = tags.filter((tag) => !TAG.test(tag));
  if (bad.length) { filterError(`Tags are made of letters, digits, - and _: ${bad.join(", ")}`); return; }
  filterError("");
  refresh();
}

document.addEventListener("submit", (event) => {
  if (event.target === searchForm()) {
    event.preventDefault();
    clearTimeout(searchTimer);
    refresh();
  } else if (event.target === filterForm()) {
    event.preventDefault();
    applyFilters();
  }
});

document.addEventListener("input", (event) => {
  if (!searchForm() || event.target !== searchForm().elements.q) return;
  clearTimeout(searchTimer);
  searchTimer = setTimeout(refresh, SEARCH_DELAY_MS); // a refresh per pause, not per keystroke
});

document.addEventListener("change", (event) => {
  const filters = filterForm();
  if (filters && filters.contains(event.target)) applyFilters();
});

document.addEventListener("click", (event) => {
  const clear = event.target.closest("[data-action=clear-filters]");
  if (!clear || event.button !== 0 || event.metaKey || event.ctrlKey) return;
  event.preventDefault();
  for (const element of filterForm().elements) {
    if (element.tagName === "SELECT") element.selectedIndex = 0;
    else if (element.type !== "hidden" && element.type !== "submit") element.value = "";
  }
  applyFilters();
});

// A search looks in every view: picking a tab means that view again, so the search ends.
// (Capture phase: before desk.js's handler builds the list URL.)
document.addEventListener("click", (event) => {
  const search = searchForm();
  if (!search || !search.elements.q.value || !event.target.closest("a[data-view-tab]")) return;
  search.elements.q.value = "";
  clearTimeout(searchTimer);
}, true);

// Tab counts ------------------------------------------------------------------------------

function updateCounts(list) {
  let counts = {};
  try { counts = JSON.parse(list.dataset.counts || "{}"); } catch (err) { return; }
  document.querySelectorAll("[data-count-for]").forEach((badge) => {
    const count = counts[badge.dataset.countFor];
    const shown = Number.isInteger(count);
    badge.hidden = !shown;
    if (shown && badge.textContent !== String(count)) badge.textContent = String(count);
  });
}

// Selection -------------------------------------------------------------------------------

function syncSelection() {
  const present = new Set(rows().map((li) => li.dataset.conversationId));
  // A conversation that left the list (solved, assigned away) leaves the selection too:
  // an action never applies to something the agent can no longer see.
  for (const id of [...selection]) if (!present.has(id)) selection.delete(id);
  rows().forEach((li) => {
    const box = li.querySelector("input.conv-check");
    const on = selection.has(li.dataset.conversationId);
    if (box && box.checked !== on) box.checked = on;
    if (on) li.dataset.checked = "1"; else delete li.dataset.checked;
  });
  const all = document.getElementById("select-all");
  if (all) {
    all.checked = present.size > 0 && selection.size === present.size;
    all.indeterminate = selection.size > 0 && selection.size < present.size;
  }
  const toolbar = bar();
  if (!toolbar) return;
  const count = document.getElementById("bulk-count");
  count.textContent = `${selection.size} selected`;
  const result = document.getElementById("bulk-result");
  toolbar.hidden = selection.size === 0 && !(result && result.textContent);
}

function toggle(id, on = !selection.has(id)) {
  if (on) selection.add(id); else selection.delete(id);
}

function selectAll(on) {
  selection.clear();
  if (on) rows().forEach((li) => selection.add(li.dataset.conversationId));
  syncSelection();
}

function clearSelection() {
  if (selection.size === 0) return false;
  selection.clear();
  syncSelection();
  return true;
}

document.addEventListener("click", (event) => {
  const box = event.target.closest("#conv-list input.conv-check");
  if (!box) return;
  const id = box.value;
  if (event.shiftKey && anchorId && anchorId !== id) {
    // Shift-click: the whole range from the previous tick takes the new state.
    const ids = rows().map((li) => li.dataset.conversationId);
    const [from, to] = [ids.indexOf(anchorId), ids.indexOf(id)].sort((a, b) => a - b);
    if (from >= 0) ids.slice(from, to + 1).forEach((each) => toggle(each, box.checked));
  }
  toggle(id, box.checked);
  anchorId = id;
  syncSelection();
});

document.addEventListener("change", (event) => {
  if (event.target.id === "select-all") selectAll(event.target.checked);
});

// Bulk actions (POST /bulk: {"updated": n, "skipped": [{"id", "reason"}]}) ---------------------

function showResult(text, kind = "info") {
  const result = document.getElementById("bulk-result");
  if (!result) return;
  result.textContent = text;
  result.dataset.kind = kind;
  clearTimeout(resultTimer);
  resultTimer = setTimeout(() => { result.textContent = ""; syncSelection(); }, RESULT_SHOWN_MS);
  syncSelection();
}

function csrfToken() {
  const input = document.querySelector("#bulk-form input[name=csrfmiddlewaretoken]");
  return input ? input.value : "";
}

async function bulk(action, value) {
  const ids = [...selection];
  if (ids.length === 0) return false;
  const toolbar = bar();
  const data = new FormData();
  ids.forEach((id) => data.append("ids", id));
  data.set("action", action);
  data.set("value", value);
  const controls = toolbar ? [...toolbar.querySelectorAll("button, select, input")] : [];
  controls.forEach((control) => { control.disabled = true; });
  try {
    const response = await fetch(toolbar ? toolbar.dataset.bulkUrl : "/bulk", {
      method: "POST", body: data, credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken(), "X-Desk-Fragment": "1", Accept: "application/json" },
    });
    let answer = null;
    try { answer = await response.json(); } catch (err) { answer = null; }
    if (!response.ok || !answer) {
      showResult((answer && answer.error) || `The action failed (${response.status}).`, "error");
      return true;
    }
    const skipped = answer.skipped || [];
    const note = skipped.length ? ` · ${skipped.length} skipped: ${skipped.map((s) => `#${s.id} ${s.reason}`).join("; ")}` : "";
    showResult(`${answer.updated} updated${note}`, skipped.length ? "warn" : "ok");
    refresh();
    const open = desk().openConversationId ? desk().openConversationId() : null;
    if (open && ids.includes(String(open)) && desk().refreshConversation) desk().refreshConversation();
  } catch (err) {
    showResult("Could not reach the server. Try again.", "error");
  } finally {
    controls.forEach((control) => { control.disabled = false; });
  }
  return true;
}

document.addEventListener("click", (event) => {
  const toolbar = bar();
  if (!toolbar || !toolbar.contains(event.target)) return;
  if (event.target.closest("[data-bulk-clear]")) { showResult(""); clearSelection(); return; }
  const button = event.target.closest("button[data-bulk-action]");
  if (!button) return;
  if (button.dataset.bulkAction === "tag") { bulkTag(); return; }
  bulk(button.dataset.bulkAction, button.dataset.bulkValue || "");
});

document.addEventListener("change", (event) => {
  const select = event.target.closest("#bulk-bar select[data-bulk-action]");
  if (!select) return;
  const option = select.selectedOptions[0];
  if (!option || option.hasAttribute("data-placeholder")) return;
  const value = select.value;
  select.selectedIndex = 0; // back to its label: the select is a menu of actions
  bulk(select.dataset.bulkAction, value);
});

function bulkTag() {
  const input = document.querySelector("#bulk-bar [data-bulk-tag]");
  const tag = input.value.trim().toLowerCase();
  if (!TAG.test(tag)) { showResult("A tag is made of letters, digits, - and _.", "error"); return; }
  bulk("tag", tag).then(() => { input.value = ""; });
}

document.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && event.target.matches("#bulk-bar [data-bulk-tag]")) { event.preventDefault(); bulkTag(); }
});

// After every refresh ------------------------------------------------------------------------

function currentRow() {
  const all = rows();
  return all.find((li) => li.dataset.conversationId === cursorId) || all.find((li) => li.classList.contains("is-selected")) || null;
}

document.addEventListener("desk:list-refreshed", (event) => {
  const list = (event.detail && event.detail.list) || listEl();
  if (!list) return;
  updateCounts(list);
  if (cursorId && !rows().some((li) => li.dataset.conversationId === cursorId)) cursorId = null;
  syncSelection();
});

document.addEventListener("desk:conversation-shown", (event) => {
  if (event.detail && String(event.detail.id) === cursorId) cursorId = null; // arrived: the open row is the cursor again
  // Opened, so read: the marker goes now rather than with the next refresh.
  const row = event.detail && document.querySelector(`#conv-list > li.conv-item[data-conversation-id="${event.detail.id}"]`);
  if (row) { delete row.dataset.unread; row.querySelector(".unread-dot")?.remove(); }
});

// Keys --------------------------------------------------------------------------------------

function move(step) {
  const all = rows();
  if (all.length === 0) return false;
  const current = currentRow();
  const index = current ? all.indexOf(current) : -1;
  const next = Math.max(0, Math.min(all.length - 1, index + step));
  if (index === -1 && step < 0) return move(1); // nothing open yet: k starts at the top too
  if (next === index) return true; // at the end of the list: nothing to do, but the key was ours
  const row = all[next];
  cursorId = row.dataset.conversationId;
  row.scrollIntoView({ block: "nearest" });
  row.querySelector("a.conv-link").click(); // desk.js opens it (as a plain click)
  return true;
}

function toggleCurrent() {
  const row = currentRow();
  if (!row) return false;
  toggle(row.dataset.conversationId);
  anchorId = row.dataset.conversationId;
  syncSelection();
  return true;
}

function focusSearch() {
  const search = searchForm();
  if (!search) return false;
  search.elements.q.focus();
  search.elements.q.select();
  return true;
}

function escape(event) {
  const search = searchForm();
  if (search && event.target === search.elements.q) {
    if (search.elements.q.value) { search.elements.q.value = ""; clearTimeout(searchTimer); refresh(); }
    else search.elements.q.blur();
    return true;
  }
  return clearSelection();
}

const keys = window.deskKeys;
if (keys) {
  const group = "List";
  keys.register({ key: "j", label: "Next conversation", group, handler: () => move(1) });
  keys.register({ key: "ArrowDown", group, handler: () => move(1) });
  keys.register({ key: "k", label: "Previous conversation", group, handler: () => move(-1) });
  keys.register({ key: "ArrowUp", group, handler: () => move(-1) });
  keys.register({ key: "x", label: "Select / unselect the conversation", group, handler: toggleCurrent });
  keys.register({ key: "shift+X", label: "Select all / none", group, handler: () => {
    if (rows().length === 0) return false;
    selectAll(selection.size !== rows().length);
    return true;
  } });
  keys.register({ key: "/", label: "Search", group, handler: focusSearch });
  // With a selection these act on it; without, they pass to the open conversation's keys.
  const onSelection = (action, value) => () => {
    if (selection.size === 0) return false;
    bulk(action, value);
    return true;
  };
  keys.register({ key: "a", label: "Assign the selection to me", group, handler: onSelection("assign", "me") });
  keys.register({ key: "e", label: "Solve the selection", group, handler: onSelection("status", "solved") });
  keys.register({ key: "Escape", label: "Clear the search or the selection", group, handler: escape });
}

window.deskList = { params, get selection() { return [...selection]; }, clearSelection, selectAll, refresh };

const initial = listEl();
if (initial) { updateCounts(initial); syncSelection(); }
