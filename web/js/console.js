// The agent console: who am I, the live socket, the call cards, the recent list, the demo's call button,
// the wrap-ups, notifications, shortcuts and the language.

import { api, ApiError } from "./api.js";
import { clear } from "./dom.js";
import { applyStatic, languageSwitch, loadLanguage, pickLanguage, setConfigWords, t } from "./i18n.js";
import { setupDemo } from "./demo.js";
import { forgetCalls, keepCalls, keptCalls } from "./keep.js";
import { installShortcuts } from "./keys.js";
import { cardPopped, loadPrefs, setupNotifications } from "./notify.js";
import { applyMessage, selectRequest } from "./protocol.js";
import { callerHeadline, patchCard, renderCard, renderRecent } from "./render.js";
import { ReconnectingSocket, backoffDelay } from "./socket.js";

const MAX_RECENT = 8;
const KEEP_DELAY_MS = 500; // the calls on screen are kept for a reload at most this long after a change
const SELECT_TIMEOUT_MS = 10_000;
const ACK_STORE = "screenpop.acked";
const ACK_STORE_MAX = 200;
const CONN_TEXT = { connecting: "conn.connecting", connected: "conn.connected", reconnecting: "conn.reconnecting",
  stopped: "conn.stopped" };

const $ = (id) => document.getElementById(id);

const state = {
  me: null,
  entries: new Map(), // call_id -> {card, seq, outcome, reason, selecting, selectError}
  recent: [], // entries, newest first
  seq: 0,
  acked: loadAcked(),
  socket: null,
  leaving: false,
  prefs: { desktop: false, sound: false },
};
const cardEls = new Map(); // call_id -> article element
const ctx = { meId: null, onSelect: selectCustomer, settings: null, send, onDismiss: dismiss };

function send(message) {
  return Boolean(state.socket && state.socket.send(message));
}

// -- boot -------------------------------------------------------------------------------------------

async function boot() {
  await loadLanguage(pickLanguage());
  applyStatic();
  languageSwitch($("lang"), () => location.reload());
  installShortcuts($("help"));
  $("help-open").addEventListener("click", () => $("help").showModal());
  $("help-close").addEventListener("click", () => $("help").close());
  $("logout").addEventListener("click", logout);
  for (let attempt = 0; ; attempt += 1) {
    try {
      state.me = await api("GET", "/api/me");
      break;
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) return goLogin();
      const delay = backoffDelay(attempt);
      showNotice(t("notice.retrying", { error: err.message, s: Math.ceil(delay / 1000) }));
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
  showNotice("");
  ctx.meId = state.me.id;
  restoreCalls();
  state.prefs = loadPrefs(state.me.id);
  setupNotifications(state.prefs, (prefs) => { state.prefs = prefs; });
  try {
    ctx.settings = await api("GET", "/api/console");
  } catch {
    ctx.settings = { dispositions: [], links: {}, row_links: {}, translations: {} };
  }
  setConfigWords(ctx.settings.translations);
  $("agent-name").textContent = state.me.name || state.me.id;
  const ext = (state.me.extensions || []).join(", ");
  $("agent-ext").textContent = ext ? t("agent.ext", { ext }) : "";
  if (state.me.demo) setupDemo(goLogin);
  render();
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  state.socket = new ReconnectingSocket(`${scheme}//${location.host}/ws/agent`, {
    onMessage: handle,
    onState: showConnection,
    onRefused: refused,
  });
  state.socket.start();
}

function goLogin() {
  state.leaving = true;
  forgetCalls();
  location.replace("/login");
}

async function refused(reason) {
  // 1008: usually the session is gone; if /api/me still says we are logged in, the server refused
  // this socket for another reason (e.g. the origin): say so instead of looping through the login page.
  try {
    await api("GET", "/api/me");
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return goLogin();
  }
  showNotice(t("notice.refused", { reason }));
}

async function logout() {
  state.leaving = true;
  forgetCalls();
  if (state.socket) state.socket.stop();
  try {
    await api("POST", "/api/logout");
  } catch (err) {
    console.warn("screenpop: logout failed", err);
  }
  location.replace("/login");
}

function showNotice(text) {
  const el = $("notice");
  el.textContent = text;
  el.hidden = !text;
}

function showConnection(kind) {
  if (state.leaving && kind === "stopped") return;
  const el = document.querySelector("[data-testid=conn-status]");
  el.dataset.state = kind;
  el.querySelector(".conn-text").textContent = CONN_TEXT[kind] ? t(CONN_TEXT[kind]) : kind;
}

// -- messages ---------------------------------------------------------------------------------------

function handle(m) {
  switch (m.type) {
    case "snapshot": return onSnapshot(Array.isArray(m.calls) ? m.calls : []);
    case "call.ringing": return m.call && onRinging(m.call);
    case "card.section": return onSection(m);
    case "call.answered": return onAnswered(m);
    case "call.withdrawn": return retire(m.call_id, "withdrawn", m.reason || "");
    case "call.ended": return retire(m.call_id, "ended", "");
    case "wrapup.state": return onWrapup(m);
    default: console.info("screenpop: ignoring message type", m.type);
  }
}

function newEntry(card) {
  state.seq += 1;
  return { card, seq: state.seq, outcome: null, reason: null, selecting: null, selectError: null };
}

/** The calls this tab showed before a reload (keep.js); the snapshot that follows reconciles them. */
function restoreCalls() {
  const kept = keptCalls(state.me.id);
  const revive = (k) => Object.assign(newEntry(k.card), { outcome: k.outcome || null, reason: k.reason || null });
  for (const k of kept.entries) state.entries.set(k.card.call_id, revive(k));
  state.recent = kept.recent.filter((k) => !state.entries.has(k.card.call_id)).slice(0, MAX_RECENT).map(revive);
  addEventListener("pagehide", saveCalls);
}

let saveTimer = null;
function saveCalls() {
  clearTimeout(saveTimer);
  saveTimer = null;
  if (state.me && !state.leaving) keepCalls(state.me.id, [...state.entries.values()], state.recent);
}

function onSnapshot(calls) {
  const seen = new Set();
  for (const card of calls) {
    if (!card || !card.call_id) continue;
    seen.add(card.call_id);
    const entry = state.entries.get(card.call_id);
    if (entry) entry.card = { ...card, wrapup: entry.card.wrapup }; // (the server's card has no wrap-up state)
    else state.entries.set(card.call_id, newEntry(card)); // an ended one: its wrap-up is still owed
    dropRecent(card.call_id);
  }
  // the snapshot is the truth: a call missing from it closed while we were away
  for (const [callId, entry] of [...state.entries]) {
    if (seen.has(callId)) continue;
    if (keptForWrapup(entry)) entry.card.state = "ended";
    else moveToRecent(entry, "ended", t("recent.closed_away"));
  }
  for (const entry of state.entries.values()) refreshWrapup(entry);
  render();
}

function onRinging(card) {
  if (!card.call_id) return;
  const entry = state.entries.get(card.call_id);
  if (entry) {
    entry.card = { ...card, wrapup: entry.card.wrapup };
  } else {
    dropRecent(card.call_id);
    state.entries.set(card.call_id, newEntry(card));
  }
  render();
  if (!entry) {
    const number = (card.caller || {}).display || (card.caller || {}).e164 || "";
    cardPopped(state.prefs, { callId: card.call_id, title: t("notify.title"), body: [callerHeadline(card), number]
      .filter(Boolean).join(" · ") }, () => focusCard(card.call_id));
  }
}

function focusCard(callId) {
  const el = cardEls.get(callId);
  if (el) el.focus();
}

function onWrapup(m) {
  const entry = state.entries.get(m.call_id) || state.recent.find((e) => e.card.call_id === m.call_id);
  if (!entry) return;
  applyMessage(entry.card, m);
  render();
}

/** After a (re)connection: where this agent's queued wrap-up stands now (a state sent while the socket
 *  was away is not sent again). */
async function refreshWrapup(entry) {
  const w = entry.card.wrapup;
  if (!w || w.state !== "queued") return;
  try {
    const rows = (await api("GET", `/api/calls/${encodeURIComponent(entry.card.call_id)}/wrapups`)).wrapups || [];
    const mine = rows.find((r) => r.agent === state.me.id);
    if (mine && mine.state !== "draft") {
      entry.card.wrapup = mine;
      render();
    }
  } catch {
    // the next wrapup.state brings it
  }
}

/** An ended call the agent answered stays on screen until its wrap-up is saved and the agent closes it. */
function keptForWrapup(entry) {
  const w = entry.card.wrapup;
  return entry.card.answered_by === state.me.id && !(w && (w.state === "saved" || w.state === "local"));
}

function dismiss(callId) {
  const entry = state.entries.get(callId);
  if (!entry) return;
  moveToRecent(entry, "ended", "");
  render();
  $("calls").focus();
}

function onSection(m) {
  const entry = state.entries.get(m.call_id);
  if (!entry || typeof m.name !== "string") return;
  applyMessage(entry.card, m);
  if (m.view && m.view.kind === "customer" && m.status !== "pending") {
    entry.selecting = null; // the identity match settled: the agent's choice is answered
    entry.selectError = null;
  }
  render();
}

function onAnswered(m) {
  const entry = state.entries.get(m.call_id);
  if (!entry) return;
  applyMessage(entry.card, m);
  if (m.agent && m.agent !== state.me.id) return retire(m.call_id, "withdrawn", "answered by another agent");
  render();
}

function retire(callId, outcome, reason) {
  const entry = state.entries.get(callId);
  if (!entry) return;
  if (outcome === "ended") entry.card.state = "ended";
  if (outcome === "withdrawn" && keptForWrapup(entry)) entry.card.state = "ended"; // transferred on: over for me
  if ((outcome === "ended" || outcome === "withdrawn") && keptForWrapup(entry)) {
    render(); // the card stays for the wrap-up until the agent closes it
    return;
  }
  moveToRecent(entry, outcome, reason);
  render();
}

function moveToRecent(entry, outcome, reason) {
  state.entries.delete(entry.card.call_id);
  entry.outcome = outcome;
  entry.reason = reason;
  entry.selecting = null;
  dropRecent(entry.card.call_id);
  state.recent.unshift(entry);
  state.recent.length = Math.min(state.recent.length, MAX_RECENT);
}

function dropRecent(callId) {
  state.recent = state.recent.filter((e) => e.card.call_id !== callId);
}

// -- agent actions ----------------------------------------------------------------------------------

function selectCustomer(callId, customerId) {
  const entry = state.entries.get(callId);
  if (!entry || entry.selecting) return;
  entry.selectError = null;
  if (!send(selectRequest(callId, customerId))) {
    entry.selectError = t("customer.not_connected");
    render();
    return;
  }
  entry.selecting = customerId;
  render();
  setTimeout(() => {
    if (entry.selecting === customerId && state.entries.get(callId) === entry) {
      entry.selecting = null;
      entry.selectError = t("customer.not_confirmed");
      render();
    }
  }, SELECT_TIMEOUT_MS);
}

function loadAcked() {
  try {
    const list = JSON.parse(sessionStorage.getItem(ACK_STORE) || "[]");
    return new Set(Array.isArray(list) ? list : []);
  } catch {
    return new Set();
  }
}

function saveAcked() {
  try {
    sessionStorage.setItem(ACK_STORE, JSON.stringify([...state.acked].slice(-ACK_STORE_MAX)));
  } catch {
    // storage full or disabled: acks are then only remembered for this page
  }
}

/** Tell the server once per call that its ringing card is on screen. */
function ackDisplayed() {
  let changed = false;
  for (const entry of state.entries.values()) {
    const { call_id: callId, state: callState } = entry.card;
    if (state.acked.has(callId) || (callState !== "ringing" && callState !== "offered")) continue;
    if (state.socket && state.socket.send({ type: "ack", call_id: callId })) {
      state.acked.add(callId);
      changed = true;
    }
  }
  if (changed) saveAcked();
}

// -- rendering --------------------------------------------------------------------------------------

function render() {
  const area = $("calls");
  const active = [...state.entries.values()].sort((a, b) => b.seq - a.seq);
  for (const [callId, el] of cardEls) {
    if (!state.entries.has(callId)) {
      el.remove();
      cardEls.delete(callId);
    }
  }
  let previous = null;
  for (const entry of active) {
    const callId = entry.card.call_id;
    let el = cardEls.get(callId);
    if (el) patchCard(el, entry, ctx);
    else {
      el = renderCard(entry, ctx);
      cardEls.set(callId, el);
    }
    const want = previous ? previous.nextElementSibling : area.firstElementChild;
    if (want !== el) area.insertBefore(el, want);
    previous = el;
  }
  $("empty").hidden = active.length > 0;
  renderRecentList();
  if (state.me && saveTimer === null) saveTimer = setTimeout(saveCalls, KEEP_DELAY_MS);
  const ringing = active.filter((e) => e.card.state === "ringing" || e.card.state === "offered").length;
  document.title = ringing ? t("title.ringing", { n: ringing }) : t("title.console");
  ackDisplayed();
}

let recentShown = [];
function renderRecentList() {
  if (recentShown.length === state.recent.length && recentShown.every((e, i) => e === state.recent[i])) return;
  const list = $("recent");
  const open = new Set([...list.querySelectorAll("details[open]")].map((d) => d.parentElement.dataset.recentCallId));
  clear(list);
  for (const entry of state.recent) {
    const item = renderRecent(entry, ctx);
    if (open.has(entry.card.call_id)) item.querySelector("details").open = true;
    list.appendChild(item);
  }
  $("recent-empty").hidden = state.recent.length > 0;
  recentShown = [...state.recent];
}

boot();
