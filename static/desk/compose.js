// The composer: drafts per conversation, canned responses, @mentions, the collision warning.
//
// Drafts: the text and the mode (reply or note) of each conversation's composer. While a tab
// is open its composer keeps them (desk.js keeps the pane in memory); localStorage keeps them,
// per agent and conversation, across reloads and closed tabs, until the message is sent.
//
// Collisions: when the agent starts a draft, the composer notes the newest message they had on
// screen (seen_message_id). A customer message or another agent's reply arriving after that
// shows a banner at once; and the server refuses the send (409, with what was missed) unless
// the agent confirms. Without JavaScript the field stays empty and the server skips the check.

const desk = window.desk;
const body = document.body;
const me = body.dataset.userId || "";
const DRAFT_PREFIX = `desk.draft.${me}.`;
const DRAFT_MAX_AGE_MS = 30 * 24 * 3600 * 1000;

function conversationIdOf(element) {
  const conv = element && element.closest("#conv");
  return conv ? Number(conv.dataset.conversationId) : null;
}

function composerOf(root) {
  return root ? root.querySelector("#composer") : null;
}

function modeOf(form) {
  const checked = form.querySelector("input[name=mode]:checked");
  return checked ? checked.value : "reply";
}

function setMode(form, mode) {
  const radio = form.querySelector(`input[name=mode][value="${mode}"]`);
  if (!radio || radio.checked) return;
  radio.checked = true;
  radio.dispatchEvent(new Event("change", { bubbles: true }));
}

// Drafts ---------------------------------------------------------------------------------

const drafts = new Map(); // conversation id -> { text, mode, seen, at }: what localStorage holds

function storedDraft(id) {
  if (drafts.has(id)) return drafts.get(id);
  try {
    const draft = JSON.parse(localStorage.getItem(DRAFT_PREFIX + id) || "null");
    if (draft && typeof draft.text === "string") { drafts.set(id, draft); return draft; }
  } catch (err) { /* unreadable: no draft */ }
  return null;
}

function saveDraft(form) {
  const id = conversationIdOf(form);
  if (!id) return;
  const text = form.elements.text.value;
  const had = Boolean(storedDraft(id));
  if (!text.trim()) {
    forgetDraft(id);
  } else {
    const draft = { text, mode: modeOf(form), seen: form.elements.seen_message_id.value, at: Date.now() };
    drafts.set(id, draft);
    try { localStorage.setItem(DRAFT_PREFIX + id, JSON.stringify(draft)); } catch (err) { /* full: memory only */ }
  }
  if (had !== Boolean(storedDraft(id))) desk.renderTabs();
}

function forgetDraft(id) {
  drafts.delete(id);
  try { localStorage.removeItem(DRAFT_PREFIX + id); } catch (err) { /* nothing stored */ }
}

// A pane shown with an empty composer gets back what the agent had written there.
function restoreDraft(root) {
  const form = composerOf(root);
  const id = conversationIdOf(form);
  if (!form || !id || form.elements.text.value) return;
  const draft = storedDraft(id);
  if (!draft) return;
  form.elements.text.value = draft.text;
  form.elements.seen_message_id.value = draft.seen || "";
  setMode(form, draft.mode === "note" ? "note" : "reply");
}

// Old drafts of this agent are dropped; other agents' drafts on a shared browser are left alone.
function pruneDrafts() {
  try {
    for (const key of Object.keys(localStorage)) {
      if (!key.startsWith(DRAFT_PREFIX)) continue;
      const draft = JSON.parse(localStorage.getItem(key) || "null");
      if (!draft || Date.now() - Number(draft.at || 0) > DRAFT_MAX_AGE_MS) localStorage.removeItem(key);
    }
  } catch (err) { /* storage unavailable */ }
}

function newestMessageId(root) {
  let newest = 0;
  root.querySelectorAll("#timeline > li[data-message-id]").forEach((li) => { newest = Math.max(newest, Number(li.dataset.messageId)); });
  return newest;
}

document.addEventListener("input", (event) => {
  const textarea = event.target;
  if (!textarea.matches("#composer textarea[name=text]")) return;
  const form = textarea.form;
  // The first keystroke of a draft fixes what the agent had seen when they started writing.
  if (textarea.value.trim() && !form.elements.seen_message_id.value) {
    form.elements.seen_message_id.value = String(newestMessageId(form.closest("#conv")) || "");
  }
  if (!textarea.value.trim()) { form.elements.seen_message_id.value = ""; hideConflict(form); }
  saveDraft(form);
  checkCollision(form.closest("#conv"));
  mentionInput(textarea);
});

document.addEventListener("change", (event) => {
  if (!event.target.matches("#composer input[name=mode]")) return;
  const form = event.target.form;
  if (form.elements.text.value.trim()) saveDraft(form);
  if (modeOf(form) !== "note") closeMentions(form);
});

document.addEventListener("desk:conversation-shown", (event) => {
  restoreDraft(event.detail.root);
  checkCollision(event.detail.root);
});
document.addEventListener("desk:conversation-updated", (event) => checkCollision(event.detail.root));
document.addEventListener("desk:conversation-hidden", (event) => {
  const form = composerOf(event.detail.root);
  if (form) { closePicker(form); closeMentions(form); }
});

// Sending ---------------------------------------------------------------------------------

function submitterFor(form) {
  return form.querySelector(`button[type=submit][data-mode="${modeOf(form)}"]`);
}

document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!form.matches("form[data-composer]")) return;
  event.preventDefault();
  send(form, event.submitter || submitterFor(form));
});

async function send(form, submitter, { confirm = false } = {}) {
  const root = form.closest("#conv");
  const id = conversationIdOf(form);
  const url = submitter && submitter.hasAttribute("formaction") ? submitter.formAction : form.action;
  const data = new FormData(form, submitter || undefined);
  if (confirm) data.set("confirm", "1");
  const error = form.querySelector(".composer-bar .form-error");
  const controls = [...form.querySelectorAll("button, select")];
  controls.forEach((c) => { c.disabled = true; });
  try {
    const response = await desk.fetchFragment(url, { method: "POST", body: data });
    if (response.status === 409) {
      const conflict = await response.json().catch(() => ({}));
      error.hidden = true;
      showConflict(form, conflict, submitter);
      return;
    }
    if (!response.ok) {
      error.textContent = (await response.text()) || `Failed (${response.status}).`;
      error.hidden = false;
      return;
    }
    error.hidden = true;
    form.elements.text.value = "";
    form.elements.seen_message_id.value = "";
    hideConflict(form);
    hideLiveWarning(form);
    forgetDraft(id);
    desk.typingStop();
    desk.applyConversation(desk.parse(await response.text()), { force: true, root });
    desk.refreshList();
    desk.renderTabs();
  } catch (err) {
    error.textContent = "Could not reach the server. Try again.";
    error.hidden = false;
  } finally {
    controls.forEach((c) => { c.disabled = false; });
  }
}

// The collision warning -------------------------------------------------------------------

const KIND_LABELS = { inbound: "Customer message", outbound: "Reply", note: "Internal note", system: "Event" };

function formatWhen(iso) {
  const when = new Date(iso);
  return Number.isNaN(when.getTime()) ? "" : when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

// The server refused the send: what arrived since the agent started, and the choice.
function showConflict(form, data, submitter) {
  hideLiveWarning(form);
  let panel = form.querySelector(".collision");
  if (!panel) {
    panel = document.createElement("div");
    panel.className = "collision";
    panel.dataset.testid = "collision";
    panel.setAttribute("role", "alert");
    form.prepend(panel);
  }
  const title = Object.assign(document.createElement("p"), { className: "collision-title" });
  title.textContent = data.error || "New messages arrived since you started writing.";
  const list = Object.assign(document.createElement("ul"), { className: "collision-list" });
  for (const item of data.conflict || []) {
    const li = document.createElement("li");
    li.dataset.messageId = String(item.id);
    const who = Object.assign(document.createElement("strong"), { textContent: item.author || KIND_LABELS[item.kind] || "" });
    const what = Object.assign(document.createElement("span"), { className: "muted", textContent: ` ${KIND_LABELS[item.kind] || item.kind} · ${formatWhen(item.created_at)} ` });
    const preview = Object.assign(document.createElement("q"), { textContent: item.preview || "" });
    li.append(who, what, preview);
    list.append(li);
  }
  const anyway = Object.assign(document.createElement("button"), { type: "button", className: "btn btn-small btn-primary", textContent: "Send anyway" });
  anyway.dataset.testid = "collision-send";
  anyway.addEventListener("click", () => { hideConflict(form); send(form, submitter, { confirm: true }); });
  const review = Object.assign(document.createElement("button"), { type: "button", className: "btn btn-small", textContent: "Review" });
  review.dataset.testid = "collision-review";
  review.addEventListener("click", () => reviewConflict(form, data));
  const actions = Object.assign(document.createElement("div"), { className: "collision-actions" });
  actions.append(anyway, review);
  panel.replaceChildren(title, list, actions);
  anyway.focus();
}

function hideConflict(form) {
  const panel = form.querySelector(".collision");
  if (panel) panel.remove();
}

// Keeps the draft, brings the timeline up to date and shows what was missed; what is on screen
// now counts as seen, so the next send goes through unless something newer arrives.
async function reviewConflict(form, data) {
  hideConflict(form);
  const root = form.closest("#conv");
  if (root.isConnected) await desk.refreshConversation();
  const ids = (data.conflict || []).map((item) => Number(item.id));
  const newest = Math.max(newestMessageId(root), ...ids);
  if (newest > 0) form.elements.seen_message_id.value = String(newest);
  saveDraft(form);
  checkCollision(root);
  const first = ids.length ? root.querySelector(`#m-${Math.min(...ids)}`) : null;
  if (first) first.scrollIntoView({ block: "center" });
  form.elements.text.focus();
}

// Before sending: a banner as soon as the customer or another agent wrote in this conversation
// since the draft began (the timeline is refreshed by events, shown or behind its tab).
function missedMessages(root) {
  const form = composerOf(root);
  if (!form || !form.elements.text.value.trim()) return [];
  const seen = Number(form.elements.seen_message_id.value);
  if (!seen) return [];
  return [...root.querySelectorAll("#timeline > li[data-message-id]")].filter((li) => {
    if (Number(li.dataset.messageId) <= seen) return false;
    if (li.dataset.kind === "inbound") return true;
    return li.dataset.kind === "outbound" && li.dataset.authorId !== "" && li.dataset.authorId !== me;
  });
}

function checkCollision(root) {
  const form = composerOf(root);
  if (!form) return;
  const missed = missedMessages(root);
  if (missed.length === 0 || form.querySelector(".collision")) { hideLiveWarning(form); return; }
  let banner = form.querySelector(".collision-live");
  if (!banner) {
    banner = document.createElement("div");
    banner.className = "collision-live";
    banner.dataset.testid = "collision-live";
    banner.setAttribute("role", "status");
    form.prepend(banner);
  }
  const customer = missed.some((li) => li.dataset.kind === "inbound");
  const agent = missed.some((li) => li.dataset.kind === "outbound");
  const what = customer && agent ? "The customer wrote and another agent replied" : customer ? "The customer wrote again" : "Another agent replied";
  const text = Object.assign(document.createElement("span"), { textContent: `${what} since you started writing.` });
  const show = Object.assign(document.createElement("button"), { type: "button", className: "btn-link", textContent: "Show" });
  show.addEventListener("click", () => missed[0].scrollIntoView({ block: "center" }));
  const ok = Object.assign(document.createElement("button"), { type: "button", className: "btn-link", textContent: "Got it" });
  ok.dataset.testid = "collision-live-ok";
  ok.addEventListener("click", () => {
    form.elements.seen_message_id.value = String(newestMessageId(root));
    saveDraft(form);
    hideLiveWarning(form);
    form.elements.text.focus();
  });
  banner.replaceChildren(text, show, ok);
}

function hideLiveWarning(form) {
  const banner = form.querySelector(".collision-live");
  if (banner) banner.remove();
}

// Suggestions: canned responses and @mentions ----------------------------------------------
// Both fetch JSON lists for the conversation as the agent types; a newer query cancels the older.

async function fetchResults(url, holder) {
  if (holder.abort) holder.abort.abort();
  holder.abort = new AbortController();
  try {
    const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" }, signal: holder.abort.signal });
    if (!response.ok) return null;
    return (await response.json()).results || [];
  } catch (err) {
    return null; // cancelled by a newer query, or offline
  }
}

function moveActive(list, step) {
  const items = [...list.querySelectorAll("[role=option]")];
  if (items.length === 0) return;
  const current = items.findIndex((item) => item.getAttribute("aria-selected") === "true");
  const next = current < 0 ? (step > 0 ? 0 : items.length - 1) : (current + step + items.length) % items.length;
  items.forEach((item, index) => item.setAttribute("aria-selected", String(index === next)));
  items[next].scrollIntoView({ block: "nearest" });
}

function activeOption(list) {
  return list.querySelector("[role=option][aria-selected=true]") || list.querySelector("[role=option]");
}

// Canned responses: a quick picker over the composer, filtered as the agent types.
const picker = { holder: {}, timer: null, range: null };

function openPicker(root) {
  const form = composerOf(root);
  if (!form) return false;
  closeMentions(form);
  const textarea = form.elements.text;
  picker.range = [textarea.selectionStart, textarea.selectionEnd];
  let panel = form.querySelector(".canned-picker");
  if (!panel) {
    panel = document.createElement("div");
    panel.className = "canned-picker";
    panel.dataset.testid = "canned-picker";
    panel.setAttribute("role", "dialog");
    panel.setAttribute("aria-label", "Canned responses");
    const search = Object.assign(document.createElement("input"), { type: "search", placeholder: "Search canned responses…", autocomplete: "off" });
    search.dataset.testid = "canned-search";
    search.setAttribute("aria-label", "Search canned responses");
    const list = Object.assign(document.createElement("ul"), { className: "suggestions" });
    list.id = "canned-results";
    list.setAttribute("role", "listbox");
    search.setAttribute("aria-controls", list.id);
    const empty = Object.assign(document.createElement("p"), { className: "muted suggestions-empty", textContent: "No canned response matches." });
    empty.hidden = true;
    panel.append(search, list, empty);
    search.addEventListener("input", () => { clearTimeout(picker.timer); picker.timer = setTimeout(() => loadCanned(form), 120); });
    search.addEventListener("keydown", (event) => pickerKey(event, form));
    list.addEventListener("mousedown", (event) => event.preventDefault()); // keep the focus in the search box
    list.addEventListener("click", (event) => {
      const option = event.target.closest("[role=option]");
      if (option) insertCanned(form, option.dataset.text);
    });
    form.prepend(panel);
  }
  const search = panel.querySelector("input");
  search.value = "";
  search.focus();
  loadCanned(form);
  return true;
}

async function loadCanned(form) {
  const panel = form.querySelector(".canned-picker");
  if (!panel) return;
  const id = conversationIdOf(form);
  const q = panel.querySelector("input").value.trim();
  const results = await fetchResults(`/canned?${new URLSearchParams({ conversation: String(id), q })}`, picker.holder);
  if (results === null || !panel.isConnected) return;
  const list = panel.querySelector("ul");
  list.replaceChildren(...results.map((item, index) => {
    const li = document.createElement("li");
    li.setAttribute("role", "option");
    li.setAttribute("aria-selected", String(index === 0));
    li.dataset.testid = "canned-item";
    li.dataset.text = item.text ?? item.body ?? "";
    const title = Object.assign(document.createElement("strong"), { textContent: item.title });
    const shortcut = Object.assign(document.createElement("span"), { className: "muted", textContent: item.shortcut ? ` /${item.shortcut}` : "" });
    const preview = Object.assign(document.createElement("span"), { className: "suggestion-preview", textContent: li.dataset.text.slice(0, 140) });
    li.append(title, shortcut, preview);
    return li;
  }));
  panel.querySelector(".suggestions-empty").hidden = results.length > 0;
}

function pickerKey(event, form) {
  const list = form.querySelector(".canned-picker ul");
  if (event.key === "ArrowDown" || event.key === "ArrowUp") { event.preventDefault(); moveActive(list, event.key === "ArrowDown" ? 1 : -1); }
  else if (event.key === "Enter") {
    event.preventDefault(); // never submits the composer
    const option = activeOption(list);
    if (option) insertCanned(form, option.dataset.text);
  } else if (event.key === "Escape") {
    event.preventDefault();
    closePicker(form);
    form.elements.text.focus();
  } else if (event.key === "/" && !event.target.value) {
    event.preventDefault(); // a second slash: the agent meant a slash, not the picker
    insertCanned(form, "/");
  }
}

function insertCanned(form, text) {
  const textarea = form.elements.text;
  const [start, end] = picker.range || [textarea.value.length, textarea.value.length];
  closePicker(form);
  textarea.focus();
  textarea.setRangeText(text, Math.min(start, textarea.value.length), Math.min(end, textarea.value.length), "end");
  textarea.dispatchEvent(new Event("input", { bubbles: true })); // the draft, its start, typing
}

function closePicker(form) {
  const panel = form.querySelector(".canned-picker");
  if (panel) panel.remove();
  if (picker.holder.abort) picker.holder.abort.abort();
}

// "/" as the first character of an empty composer opens the picker instead of typing a slash.
document.addEventListener("keydown", (event) => {
  const textarea = event.target;
  if (!(textarea instanceof HTMLTextAreaElement) || !textarea.matches("#composer textarea[name=text]")) return;
  if (event.key === "/" && !event.ctrlKey && !event.metaKey && !event.altKey && textarea.value === "") {
    event.preventDefault();
    openPicker(textarea.closest("#conv"));
    return;
  }
  mentionKey(event, textarea);
}, true);

// @mentions in internal notes: the agents who can see the conversation, by username prefix.
const mention = { holder: {}, timer: null, start: -1 };
const MENTION_BEFORE_CARET = /(^|\s)@([\w.+-]{0,30})$/;

function mentionInput(textarea) {
  const form = textarea.form;
  if (modeOf(form) !== "note") { closeMentions(form); return; }
  const match = MENTION_BEFORE_CARET.exec(textarea.value.slice(0, textarea.selectionStart));
  if (!match) { closeMentions(form); return; }
  mention.start = textarea.selectionStart - match[2].length - 1;
  clearTimeout(mention.timer);
  mention.timer = setTimeout(() => loadMentions(form, match[2]), 80);
}

async function loadMentions(form, prefix) {
  const id = conversationIdOf(form);
  const results = await fetchResults(`/mentionable?${new URLSearchParams({ conversation: String(id), q: prefix })}`, mention.holder);
  if (results === null || !form.isConnected) return;
  if (results.length === 0) { closeMentions(form); return; }
  let list = form.querySelector(".mention-list");
  if (!list) {
    list = Object.assign(document.createElement("ul"), { className: "suggestions mention-list" });
    list.id = "mention-list";
    list.dataset.testid = "mention-list";
    list.setAttribute("role", "listbox");
    list.setAttribute("aria-label", "Mention an agent");
    list.addEventListener("mousedown", (event) => event.preventDefault()); // keep the caret in the note
    list.addEventListener("click", (event) => {
      const option = event.target.closest("[role=option]");
      if (option) insertMention(form, option.dataset.username);
    });
    form.elements.text.before(list);
    form.elements.text.setAttribute("aria-controls", list.id);
  }
  list.replaceChildren(...results.map((agent, index) => {
    const li = document.createElement("li");
    li.setAttribute("role", "option");
    li.setAttribute("aria-selected", String(index === 0));
    li.dataset.testid = "mention-item";
    li.dataset.username = agent.username;
    li.append(Object.assign(document.createElement("strong"), { textContent: agent.name || agent.username }),
      Object.assign(document.createElement("span"), { className: "muted", textContent: ` @${agent.username}` }));
    return li;
  }));
}

function mentionKey(event, textarea) {
  const list = textarea.form.querySelector(".mention-list");
  if (!list || event.ctrlKey || event.metaKey || event.altKey) return;
  if (event.key === "ArrowDown" || event.key === "ArrowUp") { event.preventDefault(); moveActive(list, event.key === "ArrowDown" ? 1 : -1); }
  else if (event.key === "Enter" || event.key === "Tab") {
    const option = activeOption(list);
    if (!option) return;
    event.preventDefault();
    insertMention(textarea.form, option.dataset.username);
  } else if (event.key === "Escape") {
    event.preventDefault(); // closes the list; the next Escape leaves the composer
    closeMentions(textarea.form);
  }
}

function insertMention(form, username) {
  const textarea = form.elements.text;
  const end = textarea.selectionStart;
  closeMentions(form);
  if (mention.start < 0 || mention.start > end) return;
  textarea.setRangeText(`@${username} `, mention.start, end, "end");
  textarea.dispatchEvent(new Event("input", { bubbles: true }));
}

function closeMentions(form) {
  clearTimeout(mention.timer);
  const list = form.querySelector(".mention-list");
  if (list) { list.remove(); form.elements.text.removeAttribute("aria-controls"); }
  if (mention.holder.abort) mention.holder.abort.abort();
}

// Keys --------------------------------------------------------------------------------------

function activeComposer() {
  return composerOf(document.getElementById("conv"));
}

function focusComposer(mode) {
  const form = activeComposer();
  if (!form) return false;
  setMode(form, mode);
  const textarea = form.elements.text;
  textarea.focus();
  textarea.setSelectionRange(textarea.value.length, textarea.value.length);
  return true;
}

const keys = window.deskKeys;
keys.register({ key: "r", rank: 10, label: "Reply", group: "Conversation", handler: () => focusComposer("reply") });
keys.register({ key: "n", rank: 11, label: "Internal note", group: "Conversation", handler: () => focusComposer("note") });
keys.register({ key: "mod+Enter", rank: 12, label: "Send", group: "Conversation", handler: () => {
  const form = activeComposer();
  if (!form || !form.elements.text.value.trim()) return false;
  form.requestSubmit(submitterFor(form));
  return true;
} });
keys.register({ key: "mod+/", rank: 14, label: "Canned responses", group: "Conversation", handler: () => openPicker(document.getElementById("conv")) });
keys.register({ key: "Escape", rank: 13, label: "Leave the composer", group: "Conversation", handler: (event) => {
  const form = activeComposer();
  if (!form || !form.contains(event.target)) return false;
  if (form.querySelector(".canned-picker")) { closePicker(form); form.elements.text.focus(); return true; }
  if (form.querySelector(".mention-list")) { closeMentions(form); return true; }
  event.target.blur();
  return true;
} });

window.deskCompose = { hasDraft: (id) => Boolean(storedDraft(id)), openPicker };

pruneDrafts();
const initial = document.getElementById("conv");
if (initial) { restoreDraft(initial); checkCollision(initial); }
desk.renderTabs();
