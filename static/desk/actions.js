// Conversation actions: the snooze menu, team transfer and the agent's availability.
//
// The snooze and team forms are ordinary `form[data-async]` forms in the conversation header
// (templates/tickets/_actions.html): desk.js posts them and swaps in the fragment. This file
// adds their keys (s, 1-5, t), the browser's offset to a custom snooze time, and the top
// bar's availability select (templates/tickets/_availability.html), which answers JSON.

const keys = window.deskKeys;

function snoozeMenu() {
  return document.querySelector("#conv #snooze-menu");
}

function closeSnoozeMenu() {
  const menu = snoozeMenu();
  if (!menu || !menu.open) return false;
  menu.open = false;
  menu.querySelector("summary").focus();
  return true;
}

function openSnoozeMenu() {
  const menu = snoozeMenu();
  if (!menu) return false; // no conversation open, or a solved one
  menu.open = true;
  const first = menu.querySelector("[data-snooze-key]");
  if (first) first.focus();
  return true;
}

function snoozeItem(key) {
  const menu = snoozeMenu();
  if (!menu || !menu.open) return false; // the digit is not ours
  const button = menu.querySelector(`[data-snooze-key="${key}"]`);
  if (!button || button.disabled) return false;
  button.form.requestSubmit(button);
  return true;
}

// A click outside the open menu closes it, as a menu does.
document.addEventListener("click", (event) => {
  const menu = snoozeMenu();
  if (menu && menu.open && !menu.contains(event.target)) menu.open = false;
});

// A custom time: datetime-local has no zone, so the browser's offset is added before desk.js
// posts the form (this listener runs first: capture phase). Without JavaScript the server
// reads the typed time in the desk's zone.
function withOffset(local) {
  const date = new Date(local);
  if (!local || Number.isNaN(date.getTime())) return "";
  const minutes = -date.getTimezoneOffset();
  const sign = minutes < 0 ? "-" : "+";
  const pad = (n) => String(Math.trunc(Math.abs(n))).padStart(2, "0");
  return `${local}${sign}${pad(minutes / 60)}:${pad(minutes % 60)}`;
}

document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!form.matches("form[data-snooze-custom]")) return;
  form.elements.until.value = withOffset(form.elements.until_local.value);
}, true);

if (keys) {
  keys.register({ key: "s", rank: 40, label: "Snooze (then 1-5)", group: "Conversation", handler: () => openSnoozeMenu() });
  const items = ["For 1 hour", "For 4 hours", "Until tomorrow 09:00", "Until Monday 09:00", "Until the customer replies"];
  items.forEach((label, index) => {
    const key = String(index + 1);
    keys.register({ key, rank: 41 + index, label: `Snooze menu: ${label.toLowerCase()}`, group: "Conversation", handler: () => snoozeItem(key) });
  });
  keys.register({ key: "Escape", group: "Conversation", handler: () => closeSnoozeMenu() });
  keys.register({
    key: "t",
    rank: 50,
    label: "Transfer to a team",
    group: "Conversation",
    handler: () => {
      const select = document.querySelector("#conv select[name=team]");
      if (!select) return false;
      select.focus();
      return true;
    },
  });
}

// Availability ---------------------------------------------------------------------------

async function setAvailability(form) {
  const select = form.elements.availability;
  const error = form.querySelector(".form-error");
  const data = new FormData(form); // before disabling: a disabled select is not sent
  select.disabled = true;
  try {
    const response = await fetch(form.action, { method: "POST", body: data, credentials: "same-origin", headers: { Accept: "application/json" } });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(answer.error || `Failed (${response.status}).`);
    showAvailability(form, answer);
    error.hidden = true;
  } catch (err) {
    select.value = select.dataset.current;
    error.textContent = err instanceof TypeError ? "Could not reach the server. Try again." : err.message;
    error.hidden = false;
  } finally {
    select.disabled = false;
  }
}

function showAvailability(form, { availability, capacity }) {
  const select = form.elements.availability;
  select.value = availability;
  select.dataset.current = availability;
  const dot = form.querySelector(".av-dot");
  if (dot) dot.className = `av-dot av-${availability}`;
  const label = form.querySelector(".availability-label");
  if (label && capacity !== undefined) {
    label.title = `Routing assigns conversations to you only while you are online (up to ${capacity} open).`;
  }
}

document.addEventListener("change", (event) => {
  const form = event.target.closest("form#availability");
  if (form && event.target.name === "availability") setAvailability(form);
});

document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!form.matches("form#availability")) return;
  event.preventDefault();
  setAvailability(form);
});
