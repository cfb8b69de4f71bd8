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
  applyConversation(parse(await response.text()), { root: conv });
  if (conv.isConnected) markSeen();
});

// Keeps what the agent is doing (composer text, open formatted views, scroll position):
// only the header and the messages that changed are replaced. `root` is the conversation's
// pane, shown or kept in memory behind its tab; it defaults to the one on screen.
function applyConversation(fragment, { force = false, root = null } = {}) {
  const conv = root || document.getElementById("conv");
  const fresh = fragment.getElementById("conv");
  if (!conv || !fresh) return;
  const id = Number(conv.dataset.conversationId);
  if (fresh.dataset.conversationId !== conv.dataset.conversationId) {
    // An action moved us to another conversation (a merge): its tab shows that one instead.
    if (force) replaceTab(id, fresh);
    return;
  }
  const shown = conv.isConnected;
  const head = conv.querySelector("#conv-head");
  // A select the agent is choosing in would close under them: that header waits for the next refresh.
  if (force || !head.contains(document.activeElement)) head.replaceWith(fragment.getElementById("conv-head"));
  replaceSlaPanel(fragment.getElementById("sla-panel"), conv);
  const scroller = conv.querySelector("#conv-scroll");
  const atBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 40;
  mergeTimeline(conv.querySelector("#timeline"), fragment.getElementById("timeline"));
  const submitAs = fragment.querySelector("#composer select[name=status]");
  const currentSubmitAs = conv.querySelector("#composer select[name=status]");
  if (submitAs && currentSubmitAs && document.activeElement !== currentSubmitAs) currentSubmitAs.replaceWith(submitAs);
  if (shown) {
    if (atBottom) scroller.scrollTop = scroller.scrollHeight;
    renderTyping();
    renderPresence();
  }
  const tab = tabs.get(id);
  if (tab && tab.title !== tabTitle(conv)) { tab.title = tabTitle(conv); renderTabs(); saveTabs(); }
  document.dispatchEvent(new CustomEvent("desk:conversation-updated", { detail: { id, root: conv, shown } }));
}

// The SLA panel is replaced whole, keeping which parts the agent opened or closed.
function replaceSlaPanel(fresh, root) {
  const current = root.querySelector("#sla-panel");
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

// Tabs: every opened conversation keeps its pane (the #conv element) in memory, detached while
// hidden, so switching back is a DOM swap with no request. Hidden panes are refreshed in the
// background when an event names them. The list of tabs lives in sessionStorage (this browser
// tab only) and survives a reload; the URL (/c/<id>/) still says which one is shown.

const MAX_TABS = 8;
const TABS_KEY = `desk.tabs.${body.dataset.userId || ""}`;
const tabs = new Map(); // id -> { id, title, unread, node, scrollTop, atBottom, refocus, usedAt }
let navigation = 0; // the latest openConversation() wins when fetches race

function tabTitle(conv) {
  return conv.dataset.subject || conv.querySelector("h1").firstChild.textContent.trim();
}

function saveTabs() {
  try {
    sessionStorage.setItem(TABS_KEY, JSON.stringify([...tabs.values()].map(({ id, title, unread }) => ({ id, title, unread }))));
  } catch (err) { /* storage full or blocked: tabs just do not survive a reload */ }
}

function loadTabs() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(TABS_KEY) || "[]");
    for (const { id, title, unread } of saved) {
      if (Number.isInteger(id) && !tabs.has(id)) tabs.set(id, { id, title: String(title || ""), unread: Boolean(unread), node: null, usedAt: 0 });
    }
  } catch (err) { /* a damaged entry: start with no tabs */ }
}

function hasDraft(id) {
  return Boolean(window.deskCompose && window.deskCompose.hasDraft(id));
}

function addTab(id, node) {
  let tab = tabs.get(id);
  if (!tab) {
    // Too many: the least recently used tab without a draft makes room.
    if (tabs.size >= MAX_TABS) {
      const spare = [...tabs.values()].filter((t) => t.id !== openConversationId() && !hasDraft(t.id)).sort((a, b) => a.usedAt - b.usedAt)[0];
      if (spare) { tabs.delete(spare.id); tabRefreshers.delete(spare.id); }
    }
    tab = { id, title: "", unread: false, node: null, usedAt: 0 };
    tabs.set(id, tab);
  }
  if (node) { tab.node = node; tab.title = tabTitle(node); }
  return tab;
}

// The pane on screen goes behind its tab: its scroll position and focus are kept for its return.
function hideCurrent() {
  const current = document.getElementById("conv");
  if (!current) return;
  const id = Number(current.dataset.conversationId);
  const tab = tabs.get(id);
  if (tab && tab.node === current) {
    const scroller = current.querySelector("#conv-scroll");
    tab.scrollTop = scroller.scrollTop;
    tab.atBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 40;
    tab.refocus = current.contains(document.activeElement) && document.activeElement.matches("textarea, input[type=text]") ? document.activeElement : null;
  }
  document.dispatchEvent(new CustomEvent("desk:conversation-hidden", { detail: { id, root: current } }));
  current.remove();
}

// A pane fetched for a hidden tab is not on screen: the header tells the server not to count
// it as read (the agent's read marks drive the list's unread markers).
const BACKGROUND = { headers: { "X-Desk-Background": "1" } };

async function fetchConversation(id, { background = false } = {}) {
  const response = await fetchFragment(`/c/${id}/timeline`, background ? BACKGROUND : {});
  if (!response.ok) return { status: response.status, node: null };
  const node = parse(await response.text()).getElementById("conv");
  return { status: response.status, node };
}

async function openConversation(id, { push = true } = {}) {
  const ticket = (navigation += 1);
  const tab = tabs.get(id);
  if (tab && tab.node) {
    if (tab.node.isConnected) { refreshConversation(); return; } // already on screen
    showConversation(tab.node, id, { push });
    return;
  }
  const { status, node } = await fetchConversation(id);
  if (!node) {
    if (status === 404 && tab) closeTab(id); // gone, or no longer in the agent's inboxes
    return;
  }
  // A merged conversation's timeline redirects to the one that holds its messages now.
  const realId = Number(node.dataset.conversationId);
  if (realId !== id && tabs.has(id)) { tabs.delete(id); renderTabs(); }
  if (ticket !== navigation) { if (tabs.has(realId)) addTab(realId, node); return; } // the agent moved on meanwhile
  showConversation(node, realId, { push, replace: !push && realId !== id });
}

function showConversation(node, id, { push = true, replace = false } = {}) {
  const pane = document.getElementById("pane");
  if (document.getElementById("conv") !== node) hideCurrent();
  const tab = addTab(id, node);
  tab.unread = false;
  tab.usedAt = Date.now();
  pane.replaceChildren(node);
  document.title = `#${id} ${tabTitle(node)} · Helpdesk`;
  document.querySelectorAll(".conv-item").forEach((li) => li.classList.toggle("is-selected", li.dataset.conversationId === String(id)));
  syncClock(node.querySelector("#sla-panel"));
  tickCountdowns();
  const scroller = node.querySelector("#conv-scroll");
  scroller.scrollTop = tab.atBottom === false ? tab.scrollTop : scroller.scrollHeight;
  if (tab.refocus && node.contains(tab.refocus)) tab.refocus.focus({ preventScroll: true });
  tab.refocus = null;
  const url = `/c/${id}/?${viewQuery()}`;
  if (push) history.pushState({ conversation: id, view: state.view }, "", url);
  else if (replace) history.replaceState({ conversation: id, view: state.view }, "", url);
  typingStop();
  renderTyping();
  viewing(id);
  renderPresence();
  renderTabs();
  saveTabs();
  markSeen();
  document.dispatchEvent(new CustomEvent("desk:conversation-shown", { detail: { id, root: node } }));
}

function showEmpty({ history: how = null } = {}) {
  hideCurrent();
  const pane = document.getElementById("pane");
  pane.replaceChildren(Object.assign(document.createElement("div"), { className: "empty-pane", textContent: "Select a conversation from the list." }));
  document.title = "Helpdesk";
  document.querySelectorAll(".conv-item.is-selected").forEach((li) => li.classList.remove("is-selected"));
  const url = `${body.dataset.dashboardUrl}?${viewQuery()}`;
  if (how === "push") history.pushState({ conversation: null, view: state.view }, "", url);
  else if (how === "replace") history.replaceState({ conversation: null, view: state.view }, "", url);
  typingStop();
  viewing(null);
  renderTabs();
}

function closeTab(id) {
  const tab = tabs.get(id);
  if (!tab) return;
  const order = [...tabs.keys()];
  const index = order.indexOf(id);
  const shown = Boolean(tab.node && tab.node.isConnected);
  tabs.delete(id);
  tabRefreshers.delete(id);
  saveTabs();
  document.dispatchEvent(new CustomEvent("desk:tab-closed", { detail: { id, root: tab.node } }));
  if (!shown) { renderTabs(); return; }
  // The neighbour to the right takes its place, else the one to the left.
  const next = order[index + 1] ?? order[index - 1];
  hideCurrent(); // at once, even if the neighbour's pane is still to be fetched
  viewing(null);
  if (next === undefined) { showEmpty({ history: "replace" }); return; }
  openConversation(next, { push: false }).then(() => {
    if (openConversationId() === next) history.replaceState({ conversation: next, view: state.view }, "", `/c/${next}/?${viewQuery()}`);
    else if (!document.getElementById("conv")) showEmpty({ history: "replace" });
  });
}

function replaceTab(oldId, node) {
  const newId = Number(node.dataset.conversationId);
  const order = [...tabs.entries()];
  const at = order.findIndex(([id]) => id === oldId);
  if (at >= 0 && !tabs.has(newId)) order.splice(at, 1, [newId, { id: newId, title: "", unread: false, node: null, usedAt: 0 }]);
  else if (at >= 0) order.splice(at, 1);
  tabs.clear();
  order.forEach(([id, tab]) => tabs.set(id, tab));
  showConversation(node, newId, { push: true });
}

function switchTab(step) {
  const order = [...tabs.keys()];
  if (order.length === 0) return false;
  const current = order.indexOf(openConversationId());
  const next = current < 0 ? (step > 0 ? 0 : order.length - 1) : (current + step + order.length) % order.length;
  if (order[next] === openConversationId()) return true;
  openConversation(order[next]);
  return true;
}

let renderedTabs = "";
function renderTabs() {
  const strip = document.getElementById("conv-tabs");
  if (!strip) return;
  const open = openConversationId();
  // Redrawn only when something shown changed (presence sweeps call this every few seconds).
  const signature = JSON.stringify([open, viewQuery(), [...tabs.values()].map((t) => [t.id, t.title, t.unread, hasDraft(t.id), viewersOf(t.id).map(presenceText)])]);
  if (signature === renderedTabs && strip.childElementCount === tabs.size) return;
  renderedTabs = signature;
  const items = [...tabs.values()].map((tab) => {
    const active = tab.id === open;
    const item = document.createElement("div");
    item.setAttribute("role", "presentation");
    item.className = `conv-tab${active ? " is-active" : ""}${tab.unread ? " is-unread" : ""}`;
    item.dataset.tabId = String(tab.id);
    item.dataset.testid = "conv-tab";
    if (tab.unread) item.dataset.unread = "1";
    const link = document.createElement("a");
    link.href = `/c/${tab.id}/?${viewQuery()}`;
    link.dataset.tab = String(tab.id);
    link.setAttribute("role", "tab");
    link.setAttribute("aria-selected", String(active));
    link.title = `#${tab.id} ${tab.title}`;
    const unread = Object.assign(document.createElement("span"), { className: "tab-unread", title: "New activity" });
    unread.dataset.testid = "tab-unread";
    unread.hidden = !tab.unread;
    const title = Object.assign(document.createElement("span"), { className: "tab-title", textContent: tab.title || `#${tab.id}` });
    const number = Object.assign(document.createElement("span"), { className: "tab-no", textContent: `#${tab.id}` });
    const others = viewersOf(tab.id);
    const dot = Object.assign(document.createElement("span"), { className: "tab-presence" });
    dot.dataset.testid = "tab-presence";
    dot.hidden = others.length === 0;
    dot.title = others.map(presenceText).join(", ");
    const draft = Object.assign(document.createElement("span"), { className: "tab-draft", textContent: "✎", title: "Unsent draft" });
    draft.hidden = !hasDraft(tab.id);
    link.append(unread, title, number, dot, draft);
    const close = Object.assign(document.createElement("button"), { type: "button", className: "tab-close", textContent: "×" });
    close.dataset.action = "close-tab";
    close.setAttribute("aria-label", `Close #${tab.id}`);
    item.append(link, close);
    return item;
  });
  strip.replaceChildren(...items);
  strip.hidden = items.length === 0;
}

// After a reload the restored tabs' panes are fetched one by one in the background, so the
// first switch to each is instant too.
async function prefetchTabs() {
  for (const tab of [...tabs.values()]) {
    if (tab.node || !tabs.has(tab.id)) continue;
    try {
      const { status, node } = await fetchConversation(tab.id, { background: true });
      if (!tabs.has(tab.id) || tab.node) continue; // closed, or opened by the agent meanwhile
      if (node && Number(node.dataset.conversationId) === tab.id) addTab(tab.id, node);
      else if (status === 404 || node) { tabs.delete(tab.id); } // gone, or merged into another
    } catch (err) { return; }
  }
  renderTabs();
  saveTabs();
}

const tabRefreshers = new Map();
// A hidden tab's pane follows events like the shown one, without taking the screen.
function refreshTab(id) {
  if (!tabRefreshers.has(id)) {
    tabRefreshers.set(id, serialised(async () => {
      const tab = tabs.get(id);
      if (!tab || !tab.node) return;
      const response = await fetchFragment(`/c/${id}/timeline`, tab.node.isConnected ? {} : BACKGROUND);
      if (response.status === 404) { closeTab(id); return; }
      if (!response.ok || !tabs.has(id)) return;
      applyConversation(parse(await response.text()), { root: tab.node });
    }));
  }
  return tabRefreshers.get(id)();
}

function markUnread(id) {
  const tab = tabs.get(id);
  if (!tab || tab.unread) return;
  if (id === openConversationId() && document.visibilityState === "visible") return; // on screen: read
  tab.unread = true;
  renderTabs();
  saveTabs();
}

document.addEventListener("visibilitychange", () => {
  const tab = tabs.get(openConversationId());
  if (tab && tab.unread && document.visibilityState === "visible") { tab.unread = false; renderTabs(); saveTabs(); }
});

document.addEventListener("click", (event) => {
  const plain = event.button === 0 && !event.metaKey && !event.ctrlKey && !event.shiftKey && !event.altKey;
  const close = event.target.closest("[data-action=close-tab]");
  if (close) { closeTab(Number(close.closest("[data-tab-id]").dataset.tabId)); return; }
  const link = event.target.closest("a[data-tab]");
  if (link && plain) { event.preventDefault(); openConversation(Number(link.dataset.tab)); }
});

// Middle click closes a tab, as in a browser.
document.addEventListener("auxclick", (event) => {
  const item = event.button === 1 && event.target.closest("[data-tab-id]");
  if (item) { event.preventDefault(); closeTab(Number(item.dataset.tabId)); }
});

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
  else showEmpty();
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
  // The composer has its own sending (drafts, the collision warning): compose.js.
  if (!form.matches("form[data-async]") || form.matches("[data-composer]")) return;
  event.preventDefault();
  const root = form.closest("#conv");
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
    applyConversation(parse(await response.text()), { force: true, root });
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

// `active` holds the conversations with new messages: their tabs show "unread" until looked at.
function refreshFor(conversationIds, active = new Set()) {
  refreshList();
  const open = openConversationId();
  for (const id of conversationIds) {
    if (id === open) refreshConversation();
    else if (tabs.has(id)) refreshTab(id);
    if (active.has(id)) markUnread(id);
  }
}

const ACTIVITY_EVENTS = new Set(["message.created"]);

function handleEvent(event) {
  if (event.seq <= state.lastSeq) return; // already seen through a catch-up
  if (event.seq > state.lastSeq + 1) {
    // Something in between was dropped, or belongs to an inbox we do not see: ask.
    catchUp();
    return;
  }
  state.lastSeq = event.seq;
  refreshFor(new Set([event.conversation_id]), new Set(ACTIVITY_EVENTS.has(event.event) ? [event.conversation_id] : []));
  if (SLA_EVENTS[event.event]) slaAlert(event.event, event.conversation_id);
}

const catchUp = serialised(async () => {
  const changed = new Set();
  const active = new Set();
  for (let page = 0; page < 20; page += 1) {
    const response = await fetch(`${body.dataset.eventsUrl}?after=${state.lastSeq}`, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (response.status === 401 || response.status === 403) { window.location.reload(); return; }
    if (!response.ok) return;
    const data = await response.json();
    data.results.forEach((e) => {
      changed.add(e.conversation_id);
      if (ACTIVITY_EVENTS.has(e.event)) active.add(e.conversation_id);
      if (SLA_EVENTS[e.event]) slaAlert(e.event, e.conversation_id);
    });
    state.lastSeq = Math.max(state.lastSeq, data.last_seq);
    if (data.results.length < 500) break;
  }
  if (changed.size) refreshFor(changed, active);
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
    if (presence.viewing) sendFrame({ type: "viewing", conversation_id: presence.viewing, viewing: true });
    catchUp(); // whatever happened before the subscription was in place
  });
  socket.addEventListener("message", (message) => {
    const data = JSON.parse(message.data);
    if (data.type === "event") handleEvent(data);
    else if (data.type === "typing") typingReceived(data);
    else if (data.type === "presence") presenceReceived(data);
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
  // Other agents' typing is presence (the header line and the tabs), in any open tab.
  if (data.who === "agent") { agentTypingReceived(data); return; }
  if (data.typing && data.conversation_id !== openConversationId()) return; // shown only where it is read
  clearTimeout(typing.hideTimer);
  if (data.typing) {
    const who = data.name || (data.who === "visitor" ? "The visitor" : "Another agent");
    typing.shown = { conversationId: data.conversation_id, text: `${who} is typing…` };
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

// Presence: who else has a conversation open ------------------------------------------------
// We say which conversation we view (on open, switch and close, and every 20 s while it stays
// open); the server forwards it to the inbox's other agents and says viewing=false for us when
// our socket closes. Theirs arrive as presence frames and, while they write, as typing frames.
// A viewer not heard from for 50 s is dropped (a lost "false" must not stick); someone new
// viewing what we view gets our own frame at once, so both see each other without waiting.

const VIEWING_RESEND_MS = 20000;
const VIEWER_EXPIRY_MS = 50000;
const presence = {
  viewing: null, // the conversation we told the others we view
  viewers: new Map(), // conversation id -> Map(user id -> { name, seenAt, typingUntil })
  sweepTimer: null,
};

function viewing(id) {
  const next = id || null;
  if (presence.viewing === next) return;
  if (presence.viewing) sendFrame({ type: "viewing", conversation_id: presence.viewing, viewing: false });
  presence.viewing = next;
  if (next) sendFrame({ type: "viewing", conversation_id: next, viewing: true });
}

setInterval(() => {
  if (presence.viewing && document.getElementById("conv")) sendFrame({ type: "viewing", conversation_id: presence.viewing, viewing: true });
}, VIEWING_RESEND_MS);

function viewerEntry(conversationId, userId, name) {
  if (!presence.viewers.has(conversationId)) presence.viewers.set(conversationId, new Map());
  const viewers = presence.viewers.get(conversationId);
  const isNew = !viewers.has(userId);
  if (isNew) viewers.set(userId, { name: name || "Another agent", seenAt: 0, typingUntil: 0 });
  const entry = viewers.get(userId);
  if (name) entry.name = name;
  return { entry, isNew, viewers };
}

function presenceReceived(data) {
  const conversationId = Number(data.conversation_id);
  const userId = Number(data.user_id);
  if (!conversationId || !userId || userId === Number(body.dataset.userId)) return;
  if (data.viewing) {
    const { entry, isNew } = viewerEntry(conversationId, userId, data.name);
    const wasViewing = entry.seenAt > 0 && Date.now() - entry.seenAt <= VIEWER_EXPIRY_MS;
    entry.seenAt = Date.now();
    if ((isNew || !wasViewing) && conversationId === presence.viewing) {
      sendFrame({ type: "viewing", conversation_id: conversationId, viewing: true });
    }
  } else {
    const viewers = presence.viewers.get(conversationId);
    if (viewers) viewers.delete(userId);
  }
  presenceChanged();
}

function agentTypingReceived(data) {
  const conversationId = Number(data.conversation_id);
  const userId = Number(data.user_id);
  if (!conversationId || !userId || userId === Number(body.dataset.userId)) return;
  if (data.typing) {
    viewerEntry(conversationId, userId, data.name).entry.typingUntil = Date.now() + TYPING_SHOW_MS;
  } else {
    // "false" (sent, idle, left) ends the typing, not the viewing; it never adds a viewer.
    const entry = presence.viewers.get(conversationId)?.get(userId);
    if (!entry) return;
    entry.typingUntil = 0;
  }
  presenceChanged();
  if (data.typing) setTimeout(presenceChanged, TYPING_SHOW_MS + 50);
}

// Drops viewers not heard from in time, then redraws the header line and the tab dots.
function presenceChanged() {
  const now = Date.now();
  for (const [conversationId, viewers] of presence.viewers) {
    for (const [userId, entry] of viewers) if (!shownViewer(entry, now)) viewers.delete(userId);
    if (viewers.size === 0) presence.viewers.delete(conversationId);
  }
  renderPresence();
  renderTabs();
}

setInterval(() => { if (presence.viewers.size) presenceChanged(); }, 5000);

// Someone is shown while they type, or while their viewing is fresh.
function shownViewer(entry, now = Date.now()) {
  return entry.typingUntil > now || (entry.seenAt > 0 && now - entry.seenAt <= VIEWER_EXPIRY_MS);
}

function viewersOf(conversationId) {
  const viewers = presence.viewers.get(conversationId);
  return viewers ? [...viewers.values()].filter((entry) => shownViewer(entry)) : [];
}

function presenceText(entry) {
  return entry.typingUntil > Date.now() ? `${entry.name} is typing…` : `${entry.name} is viewing`;
}

function renderPresence() {
  const line = document.getElementById("presence");
  if (!line) return;
  const others = viewersOf(openConversationId());
  const items = others.map((entry) => {
    const item = document.createElement("span");
    item.className = entry.typingUntil > Date.now() ? "viewer is-typing" : "viewer";
    item.textContent = presenceText(entry);
    return item;
  });
  line.replaceChildren(...items);
  line.hidden = items.length === 0;
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

// Conversation keys ----------------------------------------------------------------------
// The composer's own keys (r, n, send, canned responses) are compose.js's.

function conversationForm(prop) {
  return document.querySelector(`#conv-head form[data-prop="${prop}"]`);
}

// Sets a header select and submits its form, as if the agent had picked the value.
function setProp(prop, value) {
  const form = conversationForm(prop);
  if (!form) return false;
  const select = form.querySelector("select");
  if (![...select.options].some((option) => option.value === value && !option.disabled)) return false;
  if (select.value !== value) { select.value = value; form.requestSubmit(); }
  return true;
}

const keys = window.deskKeys;
if (keys) {
  keys.register({ key: "a", rank: 20, label: "Assign to me", group: "Conversation", handler: () => (openConversationId() ? setProp("assignee", body.dataset.userId) : false) });
  keys.register({ key: "e", rank: 21, label: "Solve", group: "Conversation", handler: () => (openConversationId() ? setProp("status", "solved") : false) });
  keys.register({ key: "[", rank: 30, label: "Previous open tab", group: "Conversation", handler: () => switchTab(-1) });
  keys.register({ key: "]", rank: 31, label: "Next open tab", group: "Conversation", handler: () => switchTab(1) });
  keys.register({ key: "w", rank: 32, label: "Close the tab", group: "Conversation", handler: () => {
    const id = openConversationId();
    if (!id || !tabs.has(id)) return false;
    closeTab(id);
    return true;
  } });
}

// For the other parts of the page (list.js, actions.js, compose.js), the browser tests and
// debugging from the console.
window.desk = {
  connect, disconnect, catchUp, refreshList, refreshConversation, applyConversation, openConversation, closeTab,
  renderTabs, fetchFragment, parse, sendFrame, typingStop, csrfToken, openConversationId,
  get tabs() { return [...tabs.keys()]; },
  get lastSeq() { return state.lastSeq; },
};

// Start: the tabs of this browser tab before a reload, plus the conversation the URL opened.
loadTabs();
const initial = document.getElementById("conv");
if (initial) {
  const tab = addTab(Number(initial.dataset.conversationId), initial);
  tab.unread = false;
  tab.usedAt = Date.now();
  presence.viewing = tab.id; // announced once the socket is open
}
renderTabs();
saveTabs();
if (body.dataset.wsPath) connect();
markSeen(); // a page loaded with a conversation open
if (initial) document.dispatchEvent(new CustomEvent("desk:conversation-shown", { detail: { id: Number(initial.dataset.conversationId), root: initial } }));
setTimeout(prefetchTabs, 300);
