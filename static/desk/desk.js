// The agent dashboard: swaps server-rendered fragments and follows the realtime feed.
//
// The socket only says "something changed" (event ids, a sequence number); the page then
// refetches the list and the open conversation as HTML. Pushes are at-most-once, so after a
// gap in the sequence or a reconnect the page asks /api/v1/events/?after=<last_seq> what it
// missed. No inline handlers anywhere: the dashboard runs under a strict CSP.

const body = document.body;
document.documentElement.classList.add("js");

const FRAGMENT_HEADERS = { "X-Desk-Fragment": "1" };
const state = {
  lastSeq: Number(body.dataset.lastSeq || 0),
  view: body.dataset.view || "open",
  sort: (document.getElementById("conv-list") || body).dataset.sort || "activity",
  socket: null,
  wanted: true, // false after disconnect(): no automatic reconnect
  attempts: 0,
  retryTimer: null,
  heartbeat: null,
  awaitingPong: false,
};

// Fetching and swapping fragments ------------------------------------------------------

async function fetchFragment(url, init = {}) {
  const response = await fetch(url, { credentials: "same-origin", ...init, headers: { ...FRAGMENT_HEADERS, ...(init.headers || {}) } });
  if (response.redirected && new URL(response.url).pathname.startsWith("/login")) {
    window.location.reload(); // the session ended: the server sends us to the login page
    throw new Error("signed out");
  }
  return response;
}

function parse(html) {
  const template = document.createElement("template");
  template.innerHTML = html;
  return template.content;
}

function openConversationId() {
  const conv = document.getElementById("conv");
  return conv ? Number(conv.dataset.conversationId) : null;
}

function listUrl() {
  const params = new URLSearchParams({ view: state.view });
  if (state.sort !== "activity") params.set("sort", state.sort);
  const selected = openConversationId();
  if (selected) params.set("selected", String(selected));
  // The list pane's filters and search (list.js) add theirs.
  if (window.deskList && window.deskList.params) for (const [key, value] of window.deskList.params()) params.set(key, value);
  return `${body.dataset.listUrl}?${params}`;
}

// Refreshes are coalesced: a burst of events costs one fetch per pane, never overlapping.
function serialised(task) {
  let running = null;
  let again = false;
  return function run() {
    if (running) { again = true; return running; }
    running = (async () => {
      try {
        do { again = false; await task(); } while (again);
      } finally { running = null; }
    })();
    return running;
  };
}

const refreshList = serialised(async () => {
  const response = await fetchFragment(listUrl());
  if (!response.ok) return;
  const fresh = parse(await response.text()).getElementById("conv-list");
  const current = document.getElementById("conv-list");
  if (fresh && current) {
    current.replaceWith(fresh);
    syncClock(fresh);
    tickCountdowns();
    document.dispatchEvent(new CustomEvent("desk:list-refreshed", { detail: { list: fresh } }));
  }
});

const refreshConversation = serialised(async () => {
  const conv = document.getElementById("conv");
  if (!conv) return;
  const response = await fetchFragment(conv.dataset.timelineUrl);
  if (response.status === 404) return; // moved out of the agent's inboxes
  if (!response.ok) return;
  applyConversation(parse(await response.text()));
  markSeen();
});

// Keeps what the agent is doing (composer text, open formatted views, scroll position):
// only the header and the messages that changed are replaced.
function applyConversation(fragment, { force = false } = {}) {
  const conv = document.getElementById("conv");
  const fresh = fragment.getElementById("conv");
  if (!conv || !fresh) return;
  if (fresh.dataset.conversationId !== conv.dataset.conversationId) {
    // An action moved us to another conversation (a merge): show that one instead.
    if (force) showConversation(fragment, Number(fresh.dataset.conversationId), { push: true });
    return;
  }
  const head = document.getElementById("conv-head");
  // A select the agent is choosing in would close under them: that header waits for the next refresh.
  if (force || !head.contains(document.activeElement)) {
    head.replaceWith(fragment.getElementById("conv-head"));
    renderTyping();
  }
  replaceSlaPanel(fragment.getElementById("sla-panel"));
  const scroller = document.getElementById("conv-scroll");
  const atBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 40;
  mergeTimeline(document.getElementById("timeline"), fragment.getElementById("timeline"));
  const submitAs = fragment.querySelector("#composer select[name=status]");
  const currentSubmitAs = document.querySelector("#composer select[name=status]");
  if (submitAs && currentSubmitAs && document.activeElement !== currentSubmitAs) currentSubmitAs.replaceWith(submitAs);
  if (atBottom) scroller.scrollTop = scroller.scrollHeight;
}

// The SLA panel is replaced whole, keeping which parts the agent opened or closed.
function replaceSlaPanel(fresh) {
  const current = document.getElementById("sla-panel");
  if (!fresh || !current) return;
  const outer = current.querySelector("[data-sla-details]");
  const freshOuter = fresh.querySelector("[data-sla-details]");
  if (outer && freshOuter && outer.dataset.touched) { freshOuter.open = outer.open; freshOuter.dataset.touched = "1"; }
  current.querySelectorAll("details[data-clock-log]").forEach((log) => {
    const twin = fresh.querySelector(`details[data-clock-log="${log.dataset.clockLog}"]`);
    if (twin) twin.open = log.open;
  });
  current.replaceWith(fresh);
  syncClock(fresh);
  tickCountdowns();
}

document.addEventListener("toggle", (event) => {
  if (event.target.matches && event.target.matches("[data-sla-details]")) event.target.dataset.touched = "1";
}, true);

function mergeTimeline(list, freshList) {
  const existing = new Map([...list.children].map((li) => [li.id, li]));
  const wanted = [...freshList.children];
  const keep = new Set();
  wanted.forEach((item, index) => {
    const old = existing.get(item.id);
    let node = item;
    if (old && old.dataset.rev === item.dataset.rev) node = old;
    else if (old) { old.replaceWith(item); }
    keep.add(node);
    // Moving a node that is already in place would reload its iframe: only move when needed.
    if (list.children[index] !== node) list.insertBefore(node, list.children[index] || null);
  });
  [...list.children].forEach((li) => { if (!keep.has(li)) li.remove(); });
}

async function openConversation(id, { push = true } = {}) {
  const response = await fetchFragment(`/c/${id}/timeline`);
  if (!response.ok) return;
  const fragment = parse(await response.text());
  // A merged conversation's timeline redirects to the one that holds its messages now.
  const fresh = fragment.getElementById("conv");
  showConversation(fragment, fresh ? Number(fresh.dataset.conversationId) : id, { push, replace: !push && fresh && Number(fresh.dataset.conversationId) !== id });
}

function showConversation(fragment, id, { push = true, replace = false } = {}) {
  const pane = document.getElementById("pane");
  pane.replaceChildren(fragment);
  const conv = document.getElementById("conv");
  document.title = `#${id} ${conv.querySelector("h1").firstChild.textContent.trim()} · Helpdesk`;
  document.querySelectorAll(".conv-item").forEach((li) => li.classList.toggle("is-selected", li.dataset.conversationId === String(id)));
  tickCountdowns();
  const scroller = document.getElementById("conv-scroll");
  scroller.scrollTop = scroller.scrollHeight;
  const url = `/c/${id}/?view=${encodeURIComponent(state.view)}`;
  if (push) history.pushState({ conversation: id, view: state.view }, "", url);
  else if (replace) history.replaceState({ conversation: id, view: state.view }, "", url);
  typingStop();
  renderTyping();
  markSeen();
}

function selectView(view, { push = true } = {}) {
  state.view = view;
  document.querySelectorAll("[data-view-tab]").forEach((tab) => {
    const active = tab.dataset.viewTab === view;
    tab.classList.toggle("is-active", active);
    if (active) tab.setAttribute("aria-current", "page"); else tab.removeAttribute("aria-current");
  });
  refreshList();
  if (push) {
    const id = openConversationId();
    history.pushState({ conversation: id, view }, "", `${id ? `/c/${id}/` : body.dataset.dashboardUrl}?${viewQuery()}`);
  }
  const sortForm = document.getElementById("list-sort");
  if (sortForm) sortForm.elements.view.value = view;
}

function viewQuery() {
  const params = new URLSearchParams({ view: state.view });
  if (state.sort !== "activity") params.set("sort", state.sort);
  return params.toString();
}

document.addEventListener("change", (event) => {
  if (!event.target.matches("select[data-list-sort]")) return;
  state.sort = event.target.value;
  refreshList();
  const id = openConversationId();
  history.replaceState(history.state, "", `${id ? `/c/${id}/` : body.dataset.dashboardUrl}?${viewQuery()}`);
});

window.addEventListener("popstate", () => {
  const match = window.location.pathname.match(/^\/c\/(\d+)\/$/);
  const view = new URLSearchParams(window.location.search).get("view") || "open";
  if (view !== state.view) selectView(view, { push: false });
  if (match) openConversation(Number(match[1]), { push: false });
  else document.getElementById("pane").replaceChildren(Object.assign(document.createElement("div"), { className: "empty-pane", textContent: "Select a conversation from the list." }));
});

// Clicks, forms and toggles (delegated) --------------------------------------------------

document.addEventListener("click", (event) => {
  const plain = event.button === 0 && !event.metaKey && !event.ctrlKey && !event.shiftKey && !event.altKey;
  const link = event.target.closest("a[data-conversation]");
  if (link && link.dataset.notification) markNotificationRead(link.dataset.notification);
  if (link && plain) {
    event.preventDefault();
    openConversation(Number(link.dataset.conversation));
    if (link.closest("#bell-panel")) closeBell();
    return;
  }
  const bellButton = event.target.closest("[data-action=bell]");
  if (bellButton && plain) {
    event.preventDefault();
    toggleBell();
    return;
  }
  const tab = event.target.closest("a[data-view-tab]");
  if (tab && plain) {
    event.preventDefault();
    selectView(tab.dataset.viewTab);
    return;
  }
  const action = event.target.closest("[data-action]");
  if (!action) return;
  if (action.dataset.action === "dismiss-toast") { action.closest(".toast").remove(); return; }
  if (action.dataset.action === "desktop-alerts") { enableDesktopAlerts(action); return; }
  const message = action.closest(".msg");
  if (!message) return;
  if (action.dataset.action === "toggle-full") toggleFull(message, action);
  else if (action.dataset.action === "toggle-html" && plain) { event.preventDefault(); toggleHtml(message, action); }
  else if (action.dataset.action === "load-remote") loadRemote(message, action);
});

function toggleFull(message, button) {
  const full = message.querySelector("[data-part=full]");
  const short = message.querySelector("[data-part=short]");
  const showFull = full.hidden;
  full.hidden = !showFull;
  short.hidden = showFull;
  button.textContent = showFull ? "Show less" : "Show full message";
  button.setAttribute("aria-expanded", String(showFull));
}

// The formatted view is a sandboxed iframe (no allow-scripts, opaque origin); the server adds
// a CSP that blocks remote images until the agent asks for them.
function toggleHtml(message, button) {
  const view = message.querySelector(".html-view");
  if (!view.firstChild) {
    const bar = document.createElement("div");
    bar.className = "html-bar";
    bar.append("Remote images are blocked.");
    const remote = document.createElement("button");
    remote.type = "button";
    remote.className = "btn-link";
    remote.dataset.action = "load-remote";
    remote.textContent = "Load remote images";
    bar.append(remote);
    const frame = document.createElement("iframe");
    frame.setAttribute("sandbox", "");
    frame.setAttribute("referrerpolicy", "no-referrer");
    frame.title = "Formatted message";
    frame.src = view.dataset.src;
    view.append(bar, frame);
  }
  view.hidden = !view.hidden;
  button.textContent = view.hidden ? "View formatted" : "Hide formatted";
  button.setAttribute("aria-expanded", String(!view.hidden));
}

function loadRemote(message, button) {
  const view = message.querySelector(".html-view");
  view.querySelector("iframe").src = `${view.dataset.src}?remote=1`;
  button.disabled = true;
  button.textContent = "Remote images loaded";
}

document.addEventListener("change", (event) => {
  if (event.target.matches("select[data-autosubmit]")) event.target.form.requestSubmit();
});

document.addEventListener("submit", async (event) => {
  const form = event.target;
  if (form.matches("form[data-notif-form]")) { event.preventDefault(); submitNotificationForm(form); return; }
  if (!form.matches("form[data-async]")) return;
  event.preventDefault();
  const submitter = event.submitter;
  const url = submitter && submitter.hasAttribute("formaction") ? submitter.formAction : form.action;
  const data = new FormData(form, submitter || undefined);
  const error = form.querySelector(".form-error");
  const buttons = [...form.querySelectorAll("button, select")];
  buttons.forEach((b) => { b.disabled = true; });
  try {
    const response = await fetchFragment(url, { method: "POST", body: data });
    if (!response.ok) {
      if (error) { error.textContent = (await response.text()) || `Failed (${response.status}).`; error.hidden = false; }
      return;
    }
    if (error) error.hidden = true;
    if (form.matches("[data-composer]")) { form.querySelector("textarea").value = ""; typingStop(); }
    applyConversation(parse(await response.text()), { force: true });
    refreshList();
  } catch (err) {
    if (error) { error.textContent = "Could not reach the server. Try again."; error.hidden = false; }
  } finally {
    buttons.forEach((b) => { if (b.isConnected) b.disabled = false; });
  }
});

// The realtime feed ---------------------------------------------------------------------

function setConnection(status, label) {
  const conn = document.getElementById("conn");
  if (!conn) return;
  conn.className = `conn conn-${status}`;
  conn.textContent = label;
  conn.dataset.state = status;
}

function refreshFor(conversationIds) {
  refreshList();
  const open = openConversationId();
  if (open && conversationIds.has(open)) refreshConversation();
}

function handleEvent(event) {
  if (event.seq <= state.lastSeq) return; // already seen through a catch-up
  if (event.seq > state.lastSeq + 1) {
    // Something in between was dropped, or belongs to an inbox we do not see: ask.
    catchUp();
    return;
  }
  state.lastSeq = event.seq;
  refreshFor(new Set([event.conversation_id]));
  if (SLA_EVENTS[event.event]) slaAlert(event.event, event.conversation_id);
}

const catchUp = serialised(async () => {
  const changed = new Set();
  for (let page = 0; page < 20; page += 1) {
    const response = await fetch(`${body.dataset.eventsUrl}?after=${state.lastSeq}`, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (response.status === 401 || response.status === 403) { window.location.reload(); return; }
    if (!response.ok) return;
    const data = await response.json();
    data.results.forEach((e) => {
      changed.add(e.conversation_id);
      if (SLA_EVENTS[e.event]) slaAlert(e.event, e.conversation_id);
    });
    state.lastSeq = Math.max(state.lastSeq, data.last_seq);
    if (data.results.length < 500) break;
  }
  if (changed.size) refreshFor(changed);
});

function connect() {
  state.wanted = true;
  clearTimeout(state.retryTimer);
  if (state.socket && state.socket.readyState <= WebSocket.OPEN) return;
  const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(`${scheme}//${window.location.host}${body.dataset.wsPath}`);
  state.socket = socket;
  setConnection(state.attempts ? "reconnecting" : "connecting", state.attempts ? "Reconnecting…" : "Connecting…");
  socket.addEventListener("open", () => {
    state.attempts = 0;
    setConnection("live", "Live");
    startHeartbeat(socket);
    catchUp(); // whatever happened before the subscription was in place
  });
  socket.addEventListener("message", (message) => {
    const data = JSON.parse(message.data);
    if (data.type === "event") handleEvent(data);
    else if (data.type === "typing") typingReceived(data);
    else if (data.type === "notification") notificationReceived(data);
    else if (data.type === "pong") state.awaitingPong = false;
  });
  socket.addEventListener("close", () => {
    if (state.socket !== socket) return;
    state.socket = null;
    clearInterval(state.heartbeat);
    if (!state.wanted) { setConnection("offline", "Offline"); return; }
    scheduleReconnect();
  });
}

function scheduleReconnect() {
  state.attempts += 1;
  const delay = Math.min(30000, 1000 * 2 ** (state.attempts - 1)) * (0.5 + Math.random() / 2);
  setConnection("reconnecting", "Reconnecting…");
  state.retryTimer = setTimeout(connect, delay);
  catchUp(); // over HTTP meanwhile; also notices an ended session
}

// A socket can die silently (a proxy, a sleeping laptop): no pong in time means reconnect.
function startHeartbeat(socket) {
  state.awaitingPong = false;
  clearInterval(state.heartbeat);
  state.heartbeat = setInterval(() => {
    if (state.awaitingPong) { socket.close(); return; }
    state.awaitingPong = true;
    socket.send(JSON.stringify({ type: "ping" }));
  }, 25000);
}

function disconnect() {
  state.wanted = false;
  clearTimeout(state.retryTimer);
  clearInterval(state.heartbeat);
  const socket = state.socket;
  state.socket = null;
  if (socket) socket.close();
  setConnection("offline", "Offline");
}

// Seen receipts ---------------------------------------------------------------------------
// The agent has the timeline on screen: the customer's widget may show "Seen".

function csrfToken() {
  const input = document.querySelector("input[name=csrfmiddlewaretoken]");
  return input ? input.value : "";
}

let lastSeen = { id: null, at: 0 };
function markSeen() {
  const id = openConversationId();
  if (!id || document.visibilityState !== "visible") return;
  const now = Date.now();
  if (lastSeen.id === id && now - lastSeen.at < 2000) return; // a burst of refreshes: one receipt
  lastSeen = { id, at: now };
  fetch(`/c/${id}/seen`, { method: "POST", credentials: "same-origin", headers: { "X-CSRFToken": csrfToken() } }).catch(() => {});
}
document.addEventListener("visibilitychange", markSeen);

// Typing, both ways ---------------------------------------------------------------------
// Ours: true while the agent writes a public reply (re-sent every few seconds so a widget
// that joined late learns it), false after 3 s idle or on send. Theirs: "… is typing…" in
// the open conversation, hidden after 6 s without news (a lost "false" must not stick).

const TYPING_RESEND_MS = 2500;
const TYPING_IDLE_MS = 3000;
const TYPING_SHOW_MS = 6000;
const typing = { conversationId: null, sentAt: 0, idleTimer: null, shown: null, hideTimer: null };

function sendFrame(frame) {
  const socket = state.socket;
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(frame));
}

function composerInReplyMode() {
  const mode = document.querySelector("#composer input[name=mode]:checked");
  return !mode || mode.value === "reply";
}

function typingInput() {
  const id = openConversationId();
  if (!id || !composerInReplyMode()) return; // internal notes are nobody's business
  const now = Date.now();
  if (typing.conversationId !== id || now - typing.sentAt > TYPING_RESEND_MS) {
    if (typing.conversationId && typing.conversationId !== id) typingStop();
    sendFrame({ type: "typing", conversation_id: id, typing: true });
    typing.conversationId = id;
    typing.sentAt = now;
  }
  clearTimeout(typing.idleTimer);
  typing.idleTimer = setTimeout(typingStop, TYPING_IDLE_MS);
}

function typingStop() {
  clearTimeout(typing.idleTimer);
  if (typing.conversationId) sendFrame({ type: "typing", conversation_id: typing.conversationId, typing: false });
  typing.conversationId = null;
  typing.sentAt = 0;
}

document.addEventListener("input", (event) => {
  if (event.target.matches("#composer textarea")) typingInput();
});
document.addEventListener("change", (event) => {
  if (event.target.matches("#composer input[name=mode]") && !composerInReplyMode()) typingStop();
});

function typingReceived(data) {
  if (data.typing && data.conversation_id !== openConversationId()) return; // shown only where it is read
  clearTimeout(typing.hideTimer);
  if (data.typing) {
    const who = data.name || (data.who === "visitor" ? "The visitor" : "Another agent");
    typing.shown = { conversationId: data.conversation_id, text: data.who === "agent" ? `${who} is typing a reply…` : `${who} is typing…` };
    typing.hideTimer = setTimeout(() => { typing.shown = null; renderTyping(); }, TYPING_SHOW_MS);
  } else if (typing.shown && typing.shown.conversationId === data.conversation_id) {
    typing.shown = null;
  }
  renderTyping();
}

function renderTyping() {
  const line = document.getElementById("typing");
  if (!line) return;
  const shown = typing.shown && typing.shown.conversationId === openConversationId() ? typing.shown : null;
  line.textContent = shown ? shown.text : "";
  line.hidden = !shown;
}

// SLA: countdowns, alerts and notifications ------------------------------------------------
// Countdowns tick here, between refreshes, from the deadline the server rendered (data-due,
// epoch seconds), corrected by how far this machine's clock is from the server's (data-now).

let clockSkewMs = 0; // server time minus local time

function syncClock(element) {
  const serverNow = element && Number(element.dataset.now);
  if (serverNow) clockSkewMs = serverNow * 1000 - Date.now();
}

// The same format as tickets.views._countdown: 2d 4h, 1h 05m, 4m 09s, -3m 12s.
function countdown(ms) {
  let seconds = Math.trunc(ms / 1000);
  const sign = seconds < 0 ? "-" : "";
  seconds = Math.abs(seconds);
  const days = Math.floor(seconds / 86400);
  const hours = Math.floor((seconds % 86400) / 3600);
  const minutes = Math.floor((seconds % 3600) / 60);
  const secs = seconds % 60;
  const pad = (n) => String(n).padStart(2, "0");
  if (days) return `${sign}${days}d ${hours}h`;
  if (hours) return `${sign}${hours}h ${pad(minutes)}m`;
  return `${sign}${minutes}m ${pad(secs)}s`;
}

function tickCountdowns() {
  const now = Date.now() + clockSkewMs;
  document.querySelectorAll("time.sla-countdown[data-due]").forEach((time) => {
    const left = Number(time.dataset.due) * 1000 - now;
    const text = countdown(left);
    if (time.textContent !== text) time.textContent = text;
    const badge = time.closest(".sla");
    if (badge) badge.classList.toggle("is-overdue", left < 0);
  });
}

const SLA_EVENTS = { "sla.warned": "warn", "sla.breached": "breach" };
const NOTIFICATION_ALERTS = { sla_warning: "warn", sla_breach: "breach" };
const recentAlerts = new Map(); // "warn:12" -> when shown: the push and its notification make one toast
const ALERT_DEDUPE_MS = 60000;

function alertSeen(key) {
  const now = Date.now();
  for (const [k, at] of recentAlerts) if (now - at > ALERT_DEDUPE_MS) recentAlerts.delete(k);
  if (recentAlerts.has(key)) return true;
  recentAlerts.set(key, now);
  return false;
}

// The event says only which conversation: the clock that warned or breached (and so the
// metric to name) comes from the conversation's SLA panel, which also checks permission.
async function slaAlert(type, conversationId) {
  const kind = SLA_EVENTS[type];
  if (!conversationId || alertSeen(`${kind}:${conversationId}`)) return;
  let label = "";
  let subject = "";
  try {
    const response = await fetchFragment(`/c/${conversationId}/sla`);
    if (!response.ok) return;
    const panel = parse(await response.text()).getElementById("sla-panel");
    subject = panel.dataset.subject || "";
    const attr = kind === "warn" ? "warnedAt" : "breachedAt";
    const clocks = [...panel.querySelectorAll("[data-clock-id]")].filter((c) => c.dataset[attr]);
    clocks.sort((a, b) => Number(b.dataset[attr]) - Number(a.dataset[attr]));
    label = clocks.length ? clocks[0].dataset.metricLabel : "";
  } catch (err) {
    return;
  }
  const what = kind === "warn" ? "SLA at risk" : "SLA breached";
  const text = `${what}: ${label ? `${label} on ` : ""}#${conversationId}${subject ? ` ${subject}` : ""}`;
  showToast({ kind, text, conversationId });
}

function showToast({ kind, text, conversationId }) {
  const container = document.getElementById("toasts");
  if (!container) return;
  while (container.children.length >= 5) container.firstElementChild.remove();
  const toast = document.createElement("div");
  toast.className = `toast toast-${kind}`;
  toast.dataset.testid = "toast";
  toast.dataset.kind = kind;
  const link = document.createElement(conversationId ? "a" : "span");
  link.textContent = text;
  if (conversationId) {
    link.href = `/c/${conversationId}/`;
    link.dataset.conversation = String(conversationId);
  }
  const close = document.createElement("button");
  close.type = "button";
  close.className = "btn-link toast-close";
  close.dataset.action = "dismiss-toast";
  close.setAttribute("aria-label", "Dismiss");
  close.textContent = "×";
  toast.append(link, close);
  container.append(toast);
  setTimeout(() => toast.remove(), 15000);
  desktopAlert(text, conversationId);
}

// Browser notifications: only once the agent allowed them, and only when the tab is not in view.
function desktopAlert(text, conversationId) {
  if (!("Notification" in window) || Notification.permission !== "granted" || document.visibilityState === "visible") return;
  const note = new Notification(text, { tag: `desk-${conversationId || text}` });
  note.addEventListener("click", () => { window.focus(); if (conversationId) openConversation(conversationId); });
}

async function enableDesktopAlerts(button) {
  if (!("Notification" in window)) return;
  const permission = await Notification.requestPermission();
  button.hidden = permission !== "default";
}

function setUnread(count) {
  const badge = document.getElementById("bell-count");
  if (!badge) return;
  badge.textContent = String(count);
  badge.hidden = count <= 0;
}

function notificationReceived(data) {
  const badge = document.getElementById("bell-count");
  setUnread((badge ? Number(badge.textContent) || 0 : 0) + 1);
  const panel = document.getElementById("bell-panel");
  if (panel && !panel.hidden) loadNotifications();
  const kind = NOTIFICATION_ALERTS[data.kind];
  if (kind && data.conversation_id && alertSeen(`${kind}:${data.conversation_id}`)) return;
  showToast({ kind: kind || "info", text: data.text, conversationId: data.conversation_id });
}

const loadNotifications = serialised(async () => {
  const response = await fetchFragment("/notifications");
  if (response.ok) showNotifications(parse(await response.text()));
});

function showNotifications(fragment) {
  const panel = document.getElementById("bell-panel");
  const list = fragment.getElementById("notif-list");
  if (!panel || !list) return;
  if ("Notification" in window && Notification.permission === "default") {
    const enable = document.createElement("button");
    enable.type = "button";
    enable.className = "btn-link";
    enable.dataset.action = "desktop-alerts";
    enable.textContent = "Enable desktop alerts";
    list.querySelector(".notif-head").append(enable);
  }
  panel.replaceChildren(list);
  setUnread(Number(list.dataset.unread) || 0);
}

function toggleBell() {
  const panel = document.getElementById("bell-panel");
  if (panel.hidden) {
    panel.hidden = false;
    document.querySelector("[data-action=bell]").setAttribute("aria-expanded", "true");
    loadNotifications();
  } else closeBell();
}

function closeBell() {
  const panel = document.getElementById("bell-panel");
  if (panel) panel.hidden = true;
  const button = document.querySelector("[data-action=bell]");
  if (button) button.setAttribute("aria-expanded", "false");
}

async function submitNotificationForm(form) {
  const response = await fetchFragment(form.action, { method: "POST", body: new FormData(form) });
  if (response.ok) showNotifications(parse(await response.text()));
}

function markNotificationRead(id) {
  const data = new FormData();
  data.set("id", id);
  data.set("csrfmiddlewaretoken", csrfToken());
  fetchFragment("/notifications/read", { method: "POST", body: data })
    .then(async (response) => { if (response.ok) showNotifications(parse(await response.text())); })
    .catch(() => {});
}

syncClock(document.getElementById("conv-list"));
tickCountdowns();
setInterval(tickCountdowns, 1000);

// For the browser tests and for debugging from the console.
window.desk = { connect, disconnect, catchUp, refreshList, refreshConversation, get lastSeq() { return state.lastSeq; } };

if (body.dataset.wsPath) connect();
markSeen(); // a page loaded with a conversation open
