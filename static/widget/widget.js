/*
 * The desk's web chat widget: one file, no dependencies, no build step.
 *
 *   <script src="{desk}/static/widget/widget.js" data-key="{public_key}" async></script>
 *
 * Everything renders inside a Shadow DOM on a host element reset with `all: initial`, so the
 * host page's CSS cannot reach in and ours cannot leak out. Styles go through a constructed
 * stylesheet (not subject to the host page's style-src CSP); message text is only ever set
 * with textContent. The protocol is described in the desk's notes: HTTP under
 * /widget/api/{key}/, a WebSocket on /ws/widget/ with the visitor token as a subprotocol,
 * catch-up over HTTP after every (re)connect, and HTTP polling when no socket can be opened.
 */
(function () {
  "use strict";

  const script = document.currentScript || document.querySelector("script[data-key][src*='/static/widget/widget.js']");
  if (!script || !script.dataset.key) return;
  const KEY = script.dataset.key;
  const registry = (window.__deskWidgets = window.__deskWidgets || {});
  if (registry[KEY]) return; // the tag twice on one page: one widget
  registry[KEY] = true;

  const BASE = new URL(script.src, document.baseURI).href.replace(/\/static\/widget\/widget\.js(?:[?#].*)?$/, "");
  const API = `${BASE}/widget/api/${encodeURIComponent(KEY)}/`;
  const WS_URL = `${BASE.replace(/^http/, "ws")}/ws/widget/?key=${encodeURIComponent(KEY)}`;
  const STORAGE_KEY = `desk-widget:${KEY}`;
  const OPEN_KEY = `desk-widget:${KEY}:open`;
  const PROTOCOL = "desk-widget.v1";
  const PING_MS = 20000;
  const POLL_MS = 3000;
  const TYPING_SHOW_MS = 6000; // hide a typing indicator that was never switched off
  const TYPING_RESEND_MS = 3000; // "still typing" at most this often
  const TYPING_IDLE_MS = 4000; // no keystroke for this long: stopped typing

  // ---------------------------------------------------------------- storage (may be blocked)
  const store = {
    get(storage, key) { try { return window[storage].getItem(key); } catch (err) { return null; } },
    set(storage, key, value) { try { window[storage].setItem(key, value); } catch (err) { /* private mode */ } },
    remove(storage, key) { try { window[storage].removeItem(key); } catch (err) { /* private mode */ } },
  };

  // ---------------------------------------------------------------- state
  const state = {
    config: null,
    token: store.get("localStorage", STORAGE_KEY),
    visitor: null,
    conversationId: null,
    messages: new Map(), // id → message JSON (confirmed)
    pending: new Map(), // client_id → {text, file, status, error, sentOn}
    lastId: 0,
    agentLastSeenAt: null,
    seenSent: 0,
    open: store.get("sessionStorage", OPEN_KEY) === "1",
    started: false, // a session exists
    starting: null,
    socket: null,
    socketOpen: false,
    attempts: 0,
    httpFallback: false,
    reconnectTimer: null,
    pingTimer: null,
    pollTimer: null,
    awaitingPong: false,
    fatal: false,
    typingSentAt: 0,
    typingIdleTimer: null,
    typingHideTimer: null,
    unread: 0,
  };

  class WidgetError extends Error {
    constructor(message, status) {
      super(message);
      this.status = status;
    }
  }

  // ---------------------------------------------------------------- HTTP
  async function api(method, path, options) {
    const opts = options || {};
    const headers = { Accept: "application/json" };
    if (opts.auth !== false && state.token) headers.Authorization = `Bearer ${state.token}`;
    let body;
    if (opts.form) body = opts.form;
    else if (opts.json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(opts.json);
    }
    let response;
    try {
      response = await fetch(API + path, { method, headers, body, mode: "cors", credentials: "omit", cache: "no-store" });
    } catch (err) {
      throw new WidgetError("Could not reach the chat service. Check your connection.", 0);
    }
    let data = null;
    if (response.status !== 204) {
      try { data = await response.json(); } catch (err) { data = null; }
    }
    if (!response.ok) {
      const reason = data && typeof data.error === "string" ? data.error : `The chat service answered ${response.status}.`;
      throw new WidgetError(reason, response.status);
    }
    return data;
  }

  // ---------------------------------------------------------------- DOM
  const CSS = `
:host { all: initial; }
* { box-sizing: border-box; }
.root { position: fixed; right: 20px; bottom: 20px; z-index: 2147483000; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1f2933; }
.launcher { display: flex; align-items: center; gap: 8px; margin-left: auto; padding: 12px 18px; border: 0; border-radius: 999px; background: #2457d6; color: #fff; font: inherit; font-weight: 600; cursor: pointer; box-shadow: 0 4px 14px rgba(0,0,0,.25); }
.launcher:focus-visible, button:focus-visible, textarea:focus-visible, input:focus-visible { outline: 3px solid #9bb8ff; outline-offset: 2px; }
.launcher svg { width: 20px; height: 20px; fill: currentColor; }
.badge { min-width: 20px; padding: 0 6px; border-radius: 10px; background: #e12d39; color: #fff; font-size: 12px; line-height: 20px; text-align: center; }
.badge[hidden] { display: none; }
.panel { position: absolute; right: 0; bottom: 64px; width: 360px; max-width: calc(100vw - 40px); height: 520px; max-height: calc(100vh - 100px); display: flex; flex-direction: column; background: #fff; border-radius: 12px; box-shadow: 0 8px 30px rgba(0,0,0,.25); overflow: hidden; }
.panel[hidden] { display: none; }
.head { padding: 14px 16px; background: #2457d6; color: #fff; display: flex; align-items: flex-start; gap: 8px; }
.head .titles { flex: 1; min-width: 0; }
.head .title { font-weight: 700; font-size: 15px; }
.head .reply-time { font-size: 12px; opacity: .9; }
.head .close { border: 0; background: transparent; color: #fff; font-size: 20px; line-height: 1; cursor: pointer; padding: 2px 6px; }
.banner { padding: 8px 12px; background: #fde8e8; color: #8a1c1c; font-size: 13px; }
.banner.info { background: #fff7e0; color: #6b4e00; }
.banner[hidden] { display: none; }
.body { flex: 1; overflow-y: auto; padding: 12px; background: #f5f7fa; }
.messages { display: flex; flex-direction: column; gap: 8px; }
.msg { max-width: 80%; padding: 8px 10px; border-radius: 10px; white-space: pre-wrap; overflow-wrap: anywhere; }
.msg.out, .greeting { align-self: flex-start; background: #fff; border: 1px solid #e1e6ef; }
.msg.in { align-self: flex-end; background: #2457d6; color: #fff; }
.msg.pending { opacity: .65; }
.msg.failed { background: #fde8e8; color: #8a1c1c; border: 1px solid #f5b5b5; }
.msg .author { font-size: 11px; font-weight: 600; color: #52606d; margin-bottom: 2px; }
.msg .meta { font-size: 11px; opacity: .75; margin-top: 2px; }
.msg .retry { border: 0; background: transparent; color: inherit; text-decoration: underline; cursor: pointer; font: inherit; padding: 0; margin-left: 6px; }
.msg img { display: block; max-width: 100%; max-height: 220px; border-radius: 6px; margin-top: 4px; }
.msg a { color: inherit; }
.msg .text a { text-decoration: underline; word-break: break-all; }
.greeting { max-width: 80%; padding: 8px 10px; border-radius: 10px; }
.seen { align-self: flex-end; font-size: 11px; color: #52606d; margin-top: -4px; }
.typing { padding: 4px 14px; font-size: 12px; color: #52606d; font-style: italic; background: #f5f7fa; }
.typing[hidden] { display: none; }
.composer { display: flex; align-items: flex-end; gap: 6px; padding: 8px; border-top: 1px solid #e1e6ef; background: #fff; }
.composer[hidden] { display: none; }
.composer textarea { flex: 1; resize: none; min-height: 38px; max-height: 120px; padding: 8px 10px; border: 1px solid #cbd2d9; border-radius: 8px; font: inherit; color: inherit; }
.composer button { border: 0; border-radius: 8px; padding: 9px 12px; font: inherit; cursor: pointer; }
.composer .send { background: #2457d6; color: #fff; font-weight: 600; }
.composer .attach { background: #e4e7eb; color: #1f2933; }
.composer button:disabled { opacity: .5; cursor: default; }
.prechat { display: flex; flex-direction: column; gap: 10px; padding: 4px; }
.prechat[hidden] { display: none; }
.prechat label { display: flex; flex-direction: column; gap: 4px; font-size: 13px; font-weight: 600; }
.prechat input { padding: 8px 10px; border: 1px solid #cbd2d9; border-radius: 8px; font: inherit; font-weight: 400; color: inherit; }
.prechat button { padding: 10px; border: 0; border-radius: 8px; background: #2457d6; color: #fff; font: inherit; font-weight: 600; cursor: pointer; }
.prechat .hint { font-size: 12px; color: #52606d; }
.file-input { display: none; }
`;

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "text") node.textContent = value;
      else if (name === "className") node.className = value;
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children || []) if (child) node.appendChild(child);
    return node;
  }

  function chatIcon() {
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    const path = document.createElementNS(ns, "path");
    path.setAttribute("d", "M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H8l-4 4V6a2 2 0 0 1 2-2z");
    svg.appendChild(path);
    return svg;
  }

  const host = document.createElement("desk-chat-widget");
  // CSSOM, not a style attribute: allowed under a host page CSP without 'unsafe-inline'.
  host.style.setProperty("all", "initial");
  const shadow = host.attachShadow({ mode: "open" });
  if ("adoptedStyleSheets" in shadow && typeof CSSStyleSheet === "function" && "replaceSync" in CSSStyleSheet.prototype) {
    const sheet = new CSSStyleSheet();
    sheet.replaceSync(CSS);
    shadow.adoptedStyleSheets = [sheet];
  } else {
    shadow.appendChild(el("style", { text: CSS }));
  }

  const ui = {};
  ui.badge = el("span", { className: "badge", hidden: true, "data-testid": "unread" });
  ui.launcher = el("button", { type: "button", className: "launcher", "data-testid": "launcher", "aria-expanded": "false", "aria-label": "Open chat" },
    [chatIcon(), el("span", { text: "Chat" }), ui.badge]);
  ui.title = el("div", { className: "title", text: "Chat" });
  ui.replyTime = el("div", { className: "reply-time", "data-testid": "reply-time" });
  ui.close = el("button", { type: "button", className: "close", "aria-label": "Close chat", "data-testid": "close", text: "×" });
  ui.banner = el("div", { className: "banner", role: "alert", hidden: true, "data-testid": "error" });
  ui.status = el("div", { className: "banner info", role: "status", hidden: true, "data-testid": "connection" });
  ui.greeting = el("div", { className: "greeting", hidden: true, "data-testid": "greeting" });
  ui.messages = el("div", { className: "messages", "data-testid": "messages", "aria-live": "polite" }, [ui.greeting]);
  ui.seen = el("div", { className: "seen", "data-testid": "seen", text: "Seen" });
  ui.prechatName = el("input", { type: "text", name: "name", autocomplete: "name", maxlength: "200", "data-testid": "prechat-name" });
  ui.prechatEmail = el("input", { type: "email", name: "email", autocomplete: "email", maxlength: "254", "data-testid": "prechat-email" });
  ui.prechatHint = el("div", { className: "hint" });
  ui.prechatSubmit = el("button", { type: "submit", "data-testid": "prechat-submit", text: "Start chat" });
  ui.prechat = el("form", { className: "prechat", hidden: true, "data-testid": "prechat" }, [
    el("label", {}, [el("span", { text: "Your name" }), ui.prechatName]),
    el("label", {}, [ui.prechatEmailLabel = el("span", { text: "Email" }), ui.prechatEmail]),
    ui.prechatHint,
    ui.prechatSubmit,
  ]);
  ui.body = el("div", { className: "body" }, [ui.prechat, ui.messages]);
  ui.typing = el("div", { className: "typing", hidden: true, "data-testid": "typing", "aria-live": "polite" });
  ui.input = el("textarea", { rows: "1", placeholder: "Write a message…", "aria-label": "Message", "data-testid": "input" });
  ui.fileInput = el("input", { type: "file", className: "file-input", "data-testid": "file-input", tabindex: "-1" });
  ui.attach = el("button", { type: "button", className: "attach", "aria-label": "Attach a file", title: "Attach a file", "data-testid": "attach", text: "+" });
  ui.send = el("button", { type: "button", className: "send", "data-testid": "send", text: "Send" });
  ui.composer = el("div", { className: "composer", hidden: true }, [ui.attach, ui.fileInput, ui.input, ui.send]);
  ui.panel = el("div", { className: "panel", hidden: true, role: "dialog", "aria-label": "Chat", "data-testid": "panel" }, [
    el("div", { className: "head" }, [el("div", { className: "titles" }, [ui.title, ui.replyTime]), ui.close]),
    ui.banner, ui.status, ui.body, ui.typing, ui.composer,
  ]);
  shadow.appendChild(el("div", { className: "root" }, [ui.panel, ui.launcher]));

  function showError(text) {
    ui.banner.textContent = text || "";
    ui.banner.hidden = !text;
  }

  function showConnection(text) {
    ui.status.textContent = text || "";
    ui.status.hidden = !text;
  }

  function setMode(mode) {
    ui.panel.dataset.state = mode; // connecting | live | http | offline | error
  }

  function scrollToEnd() {
    ui.body.scrollTop = ui.body.scrollHeight;
  }

  // ---------------------------------------------------------------- rendering messages
  function safeUrl(url) {
    try {
      const parsed = new URL(url, `${BASE}/`);
      return parsed.protocol === "https:" || parsed.protocol === "http:" ? parsed.href : null;
    } catch (err) {
      return null;
    }
  }

  function formatSize(bytes) {
    if (!(bytes >= 0)) return "";
    if (bytes < 1024) return `${bytes} B`;
    if (bytes < 1024 * 1024) return `${Math.round(bytes / 1024)} KB`;
    return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
  }

  function formatTime(iso) {
    const date = new Date(iso);
    return Number.isNaN(date.getTime()) ? "" : date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function renderAttachment(att) {
    const url = safeUrl(att.url);
    const name = String(att.name || "file");
    if (!url) return el("div", { text: name });
    if (/^image\//.test(att.content_type || "")) {
      return el("a", { href: url, target: "_blank", rel: "noopener noreferrer", "data-testid": "attachment" },
        [el("img", { src: url, alt: name, loading: "lazy" })]);
    }
    return el("div", {}, [el("a", { href: url, target: "_blank", rel: "noopener noreferrer", download: name, "data-testid": "attachment",
      text: `${name}${att.size ? ` (${formatSize(att.size)})` : ""}` })]);
  }

  function fillMessage(node, msg) {
    node.textContent = "";
    if (msg.direction === "out" && msg.author_name) node.appendChild(el("div", { className: "author", text: msg.author_name }));
    if (msg.text) {
      const text = el("div", { className: "text", "data-testid": "message-text" });
      // Links only in what the desk sends (e.g. the satisfaction survey); the visitor's own
      // text stays plain.
      if (msg.direction === "out") appendLinkified(text, String(msg.text));
      else text.textContent = msg.text;
      node.appendChild(text);
    }
    for (const att of msg.attachments || []) node.appendChild(renderAttachment(att));
    node.appendChild(el("div", { className: "meta", text: formatTime(msg.created_at) }));
  }

  // http(s) URLs in plain text; trailing punctuation belongs to the sentence, not the link.
  const URL_IN_TEXT = /\bhttps?:\/\/[^\s<>"'`]+/gi;
  const URL_TRAILING = /[.,;:!?)\]}'"]+$/;

  function appendLinkified(parent, text) {
    // Only text nodes and anchors built here: nothing from the message is parsed as HTML.
    let last = 0;
    for (const match of text.matchAll(URL_IN_TEXT)) {
      const raw = match[0].replace(URL_TRAILING, "");
      const href = absoluteHttpUrl(raw);
      if (!href) continue;
      if (match.index > last) parent.appendChild(document.createTextNode(text.slice(last, match.index)));
      parent.appendChild(el("a", { href, target: "_blank", rel: "noopener noreferrer", "data-testid": "message-link", text: raw }));
      last = match.index + raw.length;
    }
    if (last < text.length) parent.appendChild(document.createTextNode(text.slice(last)));
  }

  function absoluteHttpUrl(raw) {
    try {
      const parsed = new URL(raw); // no base: a relative or odd string is not a link
      return parsed.protocol === "https:" || parsed.protocol === "http:" ? parsed.href : null;
    } catch (err) {
      return null;
    }
  }

  function fillPending(node, item) {
    node.textContent = "";
    if (item.text) node.appendChild(el("div", { className: "text", "data-testid": "message-text", text: item.text }));
    if (item.fileName) node.appendChild(el("div", { text: `📎 ${item.fileName}` }));
    const meta = el("div", { className: "meta", text: item.status === "failed" ? item.error || "Not sent." : "Sending…" });
    if (item.status === "failed" && item.retryable) {
      const retry = el("button", { type: "button", className: "retry", "data-testid": "retry", text: "Retry" });
      retry.addEventListener("click", () => { item.status = "pending"; renderPending(item.clientId); deliver(item.clientId); });
      meta.appendChild(retry);
    }
    node.appendChild(meta);
  }

  function findNode(selector) {
    return ui.messages.querySelector(selector);
  }

  function placeConfirmed(node, id) {
    // Confirmed messages in id order, pending ones after them.
    for (const child of ui.messages.children) {
      if (child === node || child === ui.greeting || child === ui.seen) continue;
      const childId = Number(child.dataset.id || 0);
      if (!childId || childId > id) {
        if (node.nextSibling !== child) ui.messages.insertBefore(node, child);
        return;
      }
    }
    if (node.parentNode !== ui.messages || node !== lastMessageNode()) ui.messages.appendChild(node);
  }

  function lastMessageNode() {
    const nodes = ui.messages.querySelectorAll("[data-testid=message]");
    return nodes.length ? nodes[nodes.length - 1] : null;
  }

  // live: it arrived while the page was open (counts as unread), not with the history.
  function upsert(msg, live = true) {
    if (!msg || typeof msg.id !== "number") return;
    const known = state.messages.has(msg.id);
    state.messages.set(msg.id, msg);
    state.lastId = Math.max(state.lastId, msg.id);
    let node = findNode(`[data-testid=message][data-id="${msg.id}"]`);
    if (!node && msg.client_id && state.pending.has(msg.client_id)) {
      node = findNode(`[data-testid=message][data-client-id="${CSS_escape(msg.client_id)}"]`);
      state.pending.delete(msg.client_id);
    }
    if (!node) node = el("div", { "data-testid": "message" });
    node.className = `msg ${msg.direction === "in" ? "in" : "out"}`;
    node.dataset.direction = msg.direction === "in" ? "in" : "out";
    node.dataset.id = String(msg.id);
    if (msg.client_id) node.dataset.clientId = msg.client_id;
    node.dataset.status = msg.status || "";
    fillMessage(node, msg);
    placeConfirmed(node, msg.id);
    if (!known && live && msg.direction === "out") {
      hideTyping();
      if (!isVisible()) {
        state.unread += 1;
        renderBadge();
      }
    }
    renderSeen();
  }

  function CSS_escape(value) {
    // window.CSS: the name CSS in this file is our stylesheet text.
    return window.CSS && window.CSS.escape ? window.CSS.escape(value) : String(value).replace(/[^a-zA-Z0-9_-]/g, "");
  }

  function renderPending(clientId) {
    const item = state.pending.get(clientId);
    if (!item) return;
    let node = findNode(`[data-testid=message][data-client-id="${CSS_escape(clientId)}"]`);
    if (!node) {
      node = el("div", { "data-testid": "message", "data-direction": "in", "data-client-id": clientId });
      ui.messages.appendChild(node);
    }
    node.className = `msg in ${item.status === "failed" ? "failed" : "pending"}`;
    node.dataset.status = item.status;
    fillPending(node, item);
  }

  function renderSeen() {
    let lastIn = null;
    for (const msg of state.messages.values()) if (msg.direction === "in" && (!lastIn || msg.id > lastIn.id)) lastIn = msg;
    const seenAt = state.agentLastSeenAt ? Date.parse(state.agentLastSeenAt) : NaN;
    if (!lastIn || Number.isNaN(seenAt) || !(seenAt >= Date.parse(lastIn.created_at))) {
      ui.seen.remove();
      return;
    }
    const node = findNode(`[data-testid=message][data-id="${lastIn.id}"]`);
    if (node && node.nextSibling !== ui.seen) node.after(ui.seen);
  }

  function renderBadge() {
    ui.badge.textContent = String(state.unread);
    ui.badge.hidden = state.unread === 0;
  }

  function showTyping(name) {
    ui.typing.textContent = `${name || "Support"} is typing…`;
    ui.typing.hidden = false;
    clearTimeout(state.typingHideTimer);
    state.typingHideTimer = setTimeout(hideTyping, TYPING_SHOW_MS);
  }

  function hideTyping() {
    clearTimeout(state.typingHideTimer);
    ui.typing.hidden = true;
    ui.typing.textContent = "";
  }

  // ---------------------------------------------------------------- panel
  function isVisible() {
    return state.open && document.visibilityState === "visible";
  }

  function setOpen(open) {
    state.open = open;
    store.set("sessionStorage", OPEN_KEY, open ? "1" : "0");
    ui.panel.hidden = !open;
    ui.launcher.setAttribute("aria-expanded", String(open));
    if (!open) return;
    state.unread = 0;
    renderBadge();
    if (!state.fatal && state.config && !state.started && !state.starting) {
      if (needsPrechat()) showPrechat();
      else startSession({});
    }
    scrollToEnd();
    sendSeen();
    if (!ui.prechat.hidden) ui.prechatName.focus();
    else if (!ui.composer.hidden) ui.input.focus();
  }

  function needsPrechat() {
    return Boolean(state.config && state.config.pre_chat_form && !state.token && !identity());
  }

  function showPrechat() {
    ui.prechat.hidden = false;
    ui.composer.hidden = true;
    ui.prechatEmail.required = Boolean(state.config.pre_chat_email_required);
    ui.prechatEmailLabel.textContent = state.config.pre_chat_email_required ? "Email" : "Email (optional)";
    ui.prechatHint.textContent = "If you leave, we will answer you by email.";
  }

  function showChat() {
    ui.prechat.hidden = true;
    ui.composer.hidden = false;
  }

  // ---------------------------------------------------------------- session
  function identity() {
    const given = window.DeskWidget && window.DeskWidget.identity;
    if (!given || typeof given !== "object") return null;
    if (given.jwt) return { proof: { jwt: String(given.jwt) } };
    if (given.user_id && given.user_hash) {
      return { proof: { user_id: String(given.user_id), user_hash: String(given.user_hash) }, name: given.name, email: given.email };
    }
    return null;
  }

  function startSession(fields) {
    if (state.starting) return state.starting;
    state.starting = (async () => {
      const proof = identity();
      const body = {};
      if (proof) {
        body.identity = proof.proof;
        if (proof.name) body.name = String(proof.name);
        if (proof.email) body.email = String(proof.email);
      }
      if (fields.name) body.name = fields.name;
      if (fields.email) body.email = fields.email;
      let data;
      try {
        data = await api("POST", "session", { json: state.token ? { ...body, token: state.token } : body, auth: false });
      } catch (err) {
        if (state.token && (err.status === 403 || err.status === 401)) {
          // An expired or unknown token: start over as a new visitor.
          setToken(null);
          if (needsPrechat() && !fields.name && !fields.email) {
            showError("Your chat session has ended. Start a new one below.");
            showPrechat();
            return;
          }
          data = await api("POST", "session", { json: body, auth: false });
        } else {
          throw err;
        }
      }
      setToken(data.token);
      state.visitor = data.visitor || null;
      state.conversationId = data.conversation_id || null;
      state.agentLastSeenAt = data.agent_last_seen_at || null;
      state.started = true;
      showError("");
      showChat();
      for (const msg of data.messages || []) upsert(msg, false);
      renderSeen();
      scrollToEnd();
      connect();
    })().catch((err) => {
      showError(err.message);
      if (err.status === 403) fatal(err.message);
    }).finally(() => {
      state.starting = null;
    });
    return state.starting;
  }

  function setToken(token) {
    state.token = token;
    if (token) store.set("localStorage", STORAGE_KEY, token);
    else store.remove("localStorage", STORAGE_KEY);
  }

  function fatal(reason) {
    state.fatal = true;
    setMode("error");
    showError(reason);
    showConnection("");
    stopSocket();
    stopPolling();
    ui.composer.hidden = true;
  }

  // ---------------------------------------------------------------- catch-up and polling
  let catchingUp = null;
  let catchUpAgain = false;

  function catchUp() {
    if (!state.started) return Promise.resolve();
    if (catchingUp) {
      catchUpAgain = true;
      return catchingUp;
    }
    catchingUp = (async () => {
      do {
        catchUpAgain = false;
        const data = await api("GET", `messages?after=${state.lastId}`);
        for (const msg of (data && data.messages) || []) upsert(msg);
        if (data && data.agent_last_seen_at) {
          state.agentLastSeenAt = data.agent_last_seen_at;
          renderSeen();
        }
      } while (catchUpAgain);
      sendSeen();
    })().catch((err) => {
      if (err.status === 401 || err.status === 403) return sessionLost();
      if (!state.socketOpen) showConnection("Reconnecting…");
      return undefined;
    }).finally(() => {
      catchingUp = null;
      scrollToEnd();
    });
    return catchingUp;
  }

  function startPolling() {
    if (state.pollTimer) return;
    state.pollTimer = setInterval(() => {
      catchUp();
      flushPending();
    }, POLL_MS);
  }

  function stopPolling() {
    clearInterval(state.pollTimer);
    state.pollTimer = null;
  }

  function sessionLost() {
    // The desk refused our token. Ask for a fresh one with it: a still valid token keeps the
    // visitor and the history; an expired one gets a new visitor (startSession).
    if (state.renewing) return;
    state.renewing = true;
    stopSocket();
    stopPolling();
    state.started = false;
    state.httpFallback = false;
    startSession({}).finally(() => { state.renewing = false; });
  }

  // ---------------------------------------------------------------- WebSocket
  function connect() {
    if (state.fatal || !state.started || !state.token) return;
    clearTimeout(state.reconnectTimer);
    if (state.socket) return;
    let socket;
    try {
      socket = new WebSocket(WS_URL, [PROTOCOL, state.token]);
    } catch (err) {
      // The browser refuses the URL or the protocol list: HTTP only.
      enterHttpFallback();
      return;
    }
    state.socket = socket;
    let opened = false;
    if (!state.socketOpen) {
      setMode(state.httpFallback ? "http" : "connecting");
      if (!state.httpFallback) showConnection(state.attempts ? "Reconnecting…" : "");
    }
    socket.addEventListener("open", () => {
      opened = true;
      state.socketOpen = true;
      state.attempts = 0;
      state.httpFallback = false;
      stopPolling();
      setMode("live");
      showConnection("");
      startPing(socket);
      catchUp(); // the channel layer is at-most-once: fetch what we may have missed
      flushPending();
      sendSeen();
    });
    socket.addEventListener("message", (event) => {
      let frame;
      try { frame = JSON.parse(event.data); } catch (err) { return; }
      if (frame && typeof frame === "object") handleFrame(frame);
    });
    // A handshake blocked by the page's CSP fires only "error" in Chromium: either event ends this socket.
    const ended = () => {
      if (state.socket !== socket) return;
      state.socket = null;
      state.socketOpen = false;
      clearInterval(state.pingTimer);
      if (state.fatal || !state.started) return;
      state.attempts += 1;
      if (!opened) probeAfterRefusal();
      else {
        setMode("connecting");
        showConnection("Reconnecting…");
        scheduleReconnect();
      }
    };
    socket.addEventListener("error", ended);
    socket.addEventListener("close", ended);
  }

  async function probeAfterRefusal() {
    // A failed handshake looks the same to the page whether the desk refused us (403) or
    // the network did; the HTTP API tells the two apart.
    try {
      await api("GET", `messages?after=${state.lastId}`).then((data) => {
        for (const msg of (data && data.messages) || []) upsert(msg);
      });
    } catch (err) {
      if (err.status === 401 || err.status === 403) {
        if (state.attempts <= 1) { sessionLost(); return; }
        fatal(`The chat could not connect: ${err.message}`);
        return;
      }
      setMode("offline");
      showConnection("Can't reach the chat. Retrying…");
      scheduleReconnect();
      return;
    }
    enterHttpFallback();
    scheduleReconnect();
  }

  function enterHttpFallback() {
    state.httpFallback = true;
    setMode("http");
    showConnection("");
    startPolling();
    flushPending();
  }

  function scheduleReconnect() {
    clearTimeout(state.reconnectTimer);
    const delay = Math.min(30000, 1000 * 2 ** Math.max(0, state.attempts - 1)) * (0.5 + Math.random() / 2);
    state.reconnectTimer = setTimeout(connect, delay);
  }

  function startPing(socket) {
    state.awaitingPong = false;
    clearInterval(state.pingTimer);
    state.pingTimer = setInterval(() => {
      if (state.awaitingPong) { socket.close(); return; } // dead socket: reconnect
      state.awaitingPong = true;
      sendFrame({ type: "ping" });
    }, PING_MS);
  }

  function stopSocket() {
    clearTimeout(state.reconnectTimer);
    clearInterval(state.pingTimer);
    const socket = state.socket;
    state.socket = null;
    state.socketOpen = false;
    if (socket) socket.close();
  }

  function sendFrame(frame) {
    if (!state.socketOpen || !state.socket) return false;
    try {
      state.socket.send(JSON.stringify(frame));
      return true;
    } catch (err) {
      return false;
    }
  }

  function handleFrame(frame) {
    switch (frame.type) {
      case "hello":
        state.conversationId = frame.conversation_id || state.conversationId;
        break;
      case "ack":
      case "message":
        upsert(frame.message);
        scrollToEnd();
        sendSeen();
        break;
      case "typing":
        if (frame.typing) showTyping(frame.name);
        else hideTyping();
        break;
      case "seen":
        state.agentLastSeenAt = frame.agent_last_seen_at || state.agentLastSeenAt;
        renderSeen();
        break;
      case "status": {
        const msg = state.messages.get(frame.message_id);
        if (msg) upsert({ ...msg, status: frame.status });
        break;
      }
      case "error":
        if (frame.client_id && state.pending.has(frame.client_id)) {
          const item = state.pending.get(frame.client_id);
          item.status = "failed";
          item.error = String(frame.error || "Not sent.");
          item.retryable = false;
          renderPending(frame.client_id);
        } else {
          showError(String(frame.error || "Something went wrong."));
        }
        break;
      case "pong":
        state.awaitingPong = false;
        break;
      default:
        break;
    }
  }

  // ---------------------------------------------------------------- sending
  function newClientId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  }

  function sendText() {
    const text = ui.input.value.trim();
    if (!text || !state.started) return;
    const max = state.config && state.config.max_message_chars;
    if (max && text.length > max) {
      showError(`Messages can be at most ${max} characters long.`);
      return;
    }
    showError("");
    ui.input.value = "";
    stopTyping();
    const clientId = newClientId();
    state.pending.set(clientId, { clientId, text, status: "pending", sentOn: null });
    renderPending(clientId);
    scrollToEnd();
    deliver(clientId);
  }

  function deliver(clientId) {
    const item = state.pending.get(clientId);
    if (!item || item.status !== "pending") return;
    if (item.file) { upload(clientId); return; }
    if (state.socketOpen) {
      if (item.sentOn === state.socket) return; // in flight on this socket: wait for its ack
      if (sendFrame({ type: "message", text: item.text, client_id: clientId })) item.sentOn = state.socket;
      return;
    }
    if (!state.httpFallback || item.posting) return; // sent once the socket is back
    item.posting = true;
    api("POST", "messages", { json: { text: item.text, client_id: clientId } })
      .then((data) => upsert(data && data.message))
      .catch((err) => failOrKeep(clientId, err))
      .finally(() => { item.posting = false; scrollToEnd(); });
  }

  function failOrKeep(clientId, err) {
    const item = state.pending.get(clientId);
    if (!item) return;
    if (err.status === 401 || err.status === 403) { sessionLost(); return; }
    if (err.status >= 400 && err.status < 500) {
      item.status = "failed";
      item.error = err.message;
      item.retryable = err.status === 429;
      renderPending(clientId);
      return;
    }
    // Network trouble or a 5xx: the same client_id goes again later, never twice in the timeline.
    item.status = "failed";
    item.error = "Not sent yet.";
    item.retryable = true;
    renderPending(clientId);
  }

  function flushPending() {
    for (const [clientId, item] of state.pending) {
      if (item.status === "failed" && item.retryable && !item.file) item.status = "pending";
      if (item.status === "pending") {
        renderPending(clientId);
        deliver(clientId);
      }
    }
  }

  function upload(clientId) {
    const item = state.pending.get(clientId);
    if (!item || item.posting) return;
    item.posting = true;
    const form = new FormData();
    form.append("file", item.file, item.fileName);
    form.append("client_id", clientId);
    api("POST", "attachments", { form })
      .then((data) => upsert(data && data.message))
      .catch((err) => {
        if (err.status === 401 || err.status === 403) { sessionLost(); return; }
        item.status = "failed";
        item.error = err.status === 413 ? `Not sent: ${err.message}` : err.message;
        item.retryable = !(err.status >= 400 && err.status < 500);
        renderPending(clientId);
      })
      .finally(() => { item.posting = false; scrollToEnd(); });
  }

  function attachFiles(files) {
    for (const file of files) {
      const clientId = newClientId();
      state.pending.set(clientId, { clientId, file, fileName: file.name, text: "", status: "pending" });
      renderPending(clientId);
      upload(clientId);
    }
    scrollToEnd();
  }

  // ---------------------------------------------------------------- typing and seen
  function postOrSend(frame, path, body) {
    if (sendFrame(frame)) return;
    if (state.httpFallback && state.started) api("POST", path, { json: body }).catch(() => {});
  }

  function onInput() {
    if (!state.started) return;
    const now = Date.now();
    if (!ui.input.value.trim()) { stopTyping(); return; }
    if (now - state.typingSentAt > TYPING_RESEND_MS) {
      state.typingSentAt = now;
      postOrSend({ type: "typing", typing: true }, "typing", { typing: true });
    }
    clearTimeout(state.typingIdleTimer);
    state.typingIdleTimer = setTimeout(stopTyping, TYPING_IDLE_MS);
  }

  function stopTyping() {
    clearTimeout(state.typingIdleTimer);
    if (!state.typingSentAt) return;
    state.typingSentAt = 0;
    postOrSend({ type: "typing", typing: false }, "typing", { typing: false });
  }

  function sendSeen() {
    if (!isVisible() || !state.started) return;
    let latest = 0;
    for (const msg of state.messages.values()) if (msg.direction === "out" && msg.id > latest) latest = msg.id;
    if (!latest || latest <= state.seenSent) return;
    state.seenSent = latest;
    postOrSend({ type: "seen", message_id: latest }, "seen", { message_id: latest });
  }

  // ---------------------------------------------------------------- events
  ui.launcher.addEventListener("click", () => setOpen(!state.open));
  ui.close.addEventListener("click", () => setOpen(false));
  ui.send.addEventListener("click", sendText);
  ui.input.addEventListener("input", onInput);
  ui.input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      sendText();
    }
  });
  ui.input.addEventListener("blur", stopTyping);
  ui.attach.addEventListener("click", () => ui.fileInput.click());
  ui.fileInput.addEventListener("change", () => {
    const files = Array.from(ui.fileInput.files || []);
    ui.fileInput.value = "";
    if (files.length && state.started) attachFiles(files);
  });
  ui.prechat.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!ui.prechat.reportValidity()) return;
    ui.prechatSubmit.disabled = true;
    startSession({ name: ui.prechatName.value.trim(), email: ui.prechatEmail.value.trim() })
      .finally(() => { ui.prechatSubmit.disabled = false; if (state.started) ui.input.focus(); });
  });
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") {
      sendSeen();
      if (state.started && !state.socket && !state.fatal) connect();
    }
  });
  window.addEventListener("online", () => { if (state.started && !state.socket && !state.fatal) connect(); });

  // ---------------------------------------------------------------- start
  async function init() {
    (document.body || document.documentElement).appendChild(host);
    setMode("connecting");
    try {
      state.config = await api("GET", "config", { auth: false });
    } catch (err) {
      state.fatal = true;
      setMode("error");
      showError(err.status ? err.message : "The chat is not available on this site right now.");
      ui.launcher.dataset.state = "error";
      if (state.open) ui.panel.hidden = false;
      return;
    }
    const config = state.config;
    ui.title.textContent = config.name || "Chat";
    ui.replyTime.textContent = (config.reply_time && config.reply_time.text) || "";
    ui.replyTime.dataset.open = config.reply_time && config.reply_time.open ? "true" : "false";
    ui.greeting.textContent = config.greeting || "";
    ui.greeting.hidden = !config.greeting;
    // A returning visitor (or a signed-in one) reconnects at once: history, and online for replies.
    if (state.token || identity()) startSession({});
    setOpen(state.open);
  }

  if (document.body) init();
  else document.addEventListener("DOMContentLoaded", init, { once: true });
})();
