// Rendering of call cards: the caller headline, the state badge, one panel per section.
// Builds DOM nodes only (textContent and attributes, see dom.js): every string from the server is escaped.

import { h, uid } from "./dom.js";
import {
  currencyKeys, currencyOf, formatAge, formatClock, formatDate, formatLatency, formatMoney, formatNumber,
  humanise, isMoneyKey,
} from "./format.js";

const WARN_WHEN_TRUE = new Set(["hold", "on_hold", "credit_hold", "blocked", "suspended", "blacklisted"]);
const WARN_WHEN_POSITIVE = new Set(["overdue", "amount_overdue", "overdue_amount", "past_due"]);
const FAILED = { timeout: "Timeout", error: "Error", unavailable: "Unavailable" };
const FAILED_HELP = {
  timeout: "The source did not answer in time.",
  error: "The source failed or answered something unusable.",
  unavailable: "The source is switched off or down.",
};
const MAX_ROWS = 50;

// -- the caller -------------------------------------------------------------------------------------

/** How far the identity lookup got: "pending" | "one" | "none" | "several" ("selected" counts as "one"). */
export function matchOf(card) {
  const s = customerSection(card);
  if (!s || s.status === "pending") return card.customer ? "one" : "pending";
  const match = s.data && typeof s.data === "object" ? s.data.match : null;
  if (match === "one" || match === "none" || match === "several") return match;
  if (card.customer) return "one";
  if ((card.candidates || []).length > 1) return "several";
  return "none";
}

function customerSection(card) {
  return (card.sections || []).find((s) => s.name === "customer") || null;
}

/** The headline of a card: the customer's name, or what is known about the caller. */
export function callerHeadline(card) {
  const caller = card.caller || {};
  if (caller.status === "withheld") return "Number withheld";
  if (caller.status === "invalid") return "Invalid number";
  const match = matchOf(card);
  if (match === "one" && card.customer && card.customer.name) return card.customer.name;
  if (match === "several") {
    const n = (card.candidates || []).length;
    return n > 1 ? `${n} possible customers` : "Several possible customers";
  }
  if (match === "pending") return "Identifying caller…";
  return "Unknown caller";
}

function callerNumber(card) {
  const caller = card.caller || {};
  if (caller.status === "withheld") return "";
  return caller.display || caller.e164 || caller.raw || "";
}

function orgLine(card) {
  if (matchOf(card) !== "one" || !card.customer) return "";
  const extra = card.customer.extra || {};
  return [extra.company, extra.city].filter((v) => typeof v === "string" && v.trim()).join(" · ");
}

/** The badge of a call: {label, kind} from its state and what happened to it here. */
export function badgeOf(entry, meId) {
  if (entry.outcome === "withdrawn") return { label: "Withdrawn", kind: "withdrawn" };
  if (entry.outcome === "ended" || entry.card.state === "ended") return { label: "Ended", kind: "ended" };
  if (entry.card.state === "answered") {
    const by = entry.card.answered_by;
    if (!by || by === meId) return { label: "Answered", kind: "answered" };
    return { label: "Answered elsewhere", kind: "withdrawn" };
  }
  if (entry.card.state === "offered") return { label: "Incoming", kind: "ringing" };
  return { label: "Ringing", kind: "ringing" };
}

function renderHead(entry, ctx, headingId) {
  const { card } = entry;
  const badge = badgeOf(entry, ctx.meId);
  const match = matchOf(card);
  const number = callerNumber(card);
  const org = orgLine(card);
  const started = formatClock(card.started_at);
  const known = match === "one" && (card.caller || {}).status !== "withheld";
  return h("header", { class: "card-head" },
    h("div", { class: "card-who" },
      h("h2", {
        id: headingId, class: ["caller-name", known ? "" : "caller-name--unknown"],
        "data-testid": "caller-name",
      }, callerHeadline(card)),
      org ? h("p", { class: "caller-org", "data-testid": "caller-org" }, org) : null,
      h("p", { class: "caller-line" },
        number ? h("span", { class: "caller-number", "data-testid": "caller-number" }, number) : null,
        card.called ? h("span", { class: "muted" }, `to ${card.called}`) : null,
        started ? h("span", { class: "muted" }, `since ${started}`) : null,
        card.transferred_from
          ? h("span", { class: "muted", "data-testid": "transferred-from" }, `transferred from ${card.transferred_from}`)
          : null)),
    h("span", { class: ["badge", `badge--${badge.kind}`], "data-testid": "call-state" }, badge.label));
}

// -- generic data -----------------------------------------------------------------------------------

function warnRow(key, value) {
  const k = String(key).toLowerCase();
  if (WARN_WHEN_TRUE.has(k)) return value === true;
  if (WARN_WHEN_POSITIVE.has(k)) return typeof value === "number" ? value > 0 : Number(value) > 0;
  return false;
}

/** One value, formatted by its key: money with the currency of `parent`, dates, yes/no, nested data. */
export function renderValue(value, key = "", parent = null) {
  if (value === null || value === undefined || value === "") return h("span", { class: "muted" }, "—");
  if (typeof value === "boolean") {
    const warn = value && WARN_WHEN_TRUE.has(String(key).toLowerCase());
    return h("span", { class: warn ? "flag flag--warn" : "" }, value ? "Yes" : "No");
  }
  if (isMoneyKey(key)) {
    const money = formatMoney(value, currencyOf(parent));
    if (money !== null) return h("span", { class: "num" }, money);
  }
  if (typeof value === "number") return h("span", { class: "num" }, formatNumber(value));
  if (typeof value === "string") return document.createTextNode(formatDate(value) ?? value);
  if (Array.isArray(value)) return renderList(value);
  if (typeof value === "object") return renderObject(value);
  return document.createTextNode(String(value));
}

function hasMoney(obj) {
  return Object.entries(obj).some(([k, v]) => isMoneyKey(k) && formatMoney(v, null) !== null);
}

/** An object as a key/value list with humanised keys. */
export function renderObject(obj) {
  const hidden = currencyOf(obj) && hasMoney(obj) ? new Set(currencyKeys(obj)) : new Set();
  const entries = Object.entries(obj).filter(([k]) => !hidden.has(k));
  if (!entries.length) return h("p", { class: "muted" }, "No data");
  return h("dl", { class: "kv" },
    entries.map(([k, v]) => h("div", {
      class: ["kv-row", warnRow(k, v) ? "kv-row--warn" : "", isLong(v) ? "kv-row--stack" : ""], "data-key": k,
    },
      h("dt", {}, humanise(k)),
      h("dd", {}, renderValue(v, k, obj)))));
}

/** Long text (an e-mail, a note) reads better under its key than squeezed beside it. */
function isLong(v) {
  return typeof v === "string" && v.length > 28 && formatDate(v) === null;
}

function isPlainObject(v) {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** A list: a compact table for objects, a bulleted list otherwise, "Nothing recent" when empty. */
export function renderList(list) {
  if (!list.length) return h("p", { class: "muted" }, "Nothing recent");
  if (!list.every(isPlainObject)) {
    return h("ul", { class: "plain-list" }, list.slice(0, MAX_ROWS).map((v) => h("li", {}, renderValue(v))));
  }
  const columns = [];
  for (const row of list) for (const k of Object.keys(row)) if (!columns.includes(k)) columns.push(k);
  const moneyCols = columns.filter(isMoneyKey);
  const hide = new Set();
  if (moneyCols.length && list.every((row) => currencyOf(row))) {
    for (const row of list) for (const k of currencyKeys(row)) hide.add(k);
  }
  const shown = columns.filter((k) => !hide.has(k));
  const numeric = new Set(shown.filter((k) => list.every((row) =>
    row[k] === null || row[k] === undefined || typeof row[k] === "number" || (isMoneyKey(k) && formatMoney(row[k], null) !== null))));
  const rows = list.slice(0, MAX_ROWS);
  const table = h("table", { class: ["data-table", shown.length > 4 ? "data-table--many" : ""] },
    h("thead", {}, h("tr", {}, shown.map((k) => h("th", { scope: "col", class: numeric.has(k) ? "num" : "" }, humanise(k))))),
    h("tbody", {}, rows.map((row) => h("tr", {},
      shown.map((k) => h("td", {
        class: [numeric.has(k) ? "num" : "", warnRow(k, row[k]) ? "cell--warn" : ""],
        "data-label": humanise(k),
      }, renderValue(row[k], k, row)))))));
  const more = list.length > rows.length ? h("p", { class: "muted small" }, `and ${list.length - rows.length} more`) : null;
  return h("div", { class: "table-wrap" }, table, more);
}

/** Any section data. */
export function renderData(data) {
  if (data === null || data === undefined) return h("p", { class: "muted" }, "No data");
  if (Array.isArray(data)) return renderList(data);
  if (isPlainObject(data)) return renderObject(data);
  return h("p", {}, renderValue(data));
}

function isWide(section) {
  const d = section.data;
  if (section.name === "customer") return matchOf({ sections: [section] }) === "several";
  if (Array.isArray(d)) return d.length > 0 && d.every(isPlainObject);
  return isPlainObject(d) && Object.values(d).some((v) => Array.isArray(v) && v.length && v.every(isPlainObject));
}

// -- the customer section ---------------------------------------------------------------------------

function renderCandidates(entry, candidates, ctx) {
  const selecting = entry.selecting;
  const readOnly = ctx.readOnly || entry.outcome;
  return h("div", { class: "candidates" },
    h("p", {}, `${candidates.length} customers share this number. Who is calling?`),
    h("ul", { class: "candidate-list" }, candidates.map((c) => {
      const extra = (c && c.extra) || {};
      const detail = [extra.company, extra.city].filter((v) => typeof v === "string" && v.trim()).join(" · ");
      const label = [h("span", { class: "candidate-name" }, c.name || c.id), detail ? h("span", { class: "candidate-detail" }, detail) : null];
      if (readOnly) return h("li", {}, h("div", { class: "candidate candidate--static" }, label));
      const busy = selecting === c.id;
      // aria-disabled (not disabled) while a choice is on its way, so focus stays on the chosen button
      return h("li", {}, h("button", {
        type: "button", class: "candidate", "data-customer-id": c.id,
        "aria-disabled": selecting ? "true" : null, "aria-busy": busy ? "true" : null,
        on: { click: () => ctx.onSelect(entry.card.call_id, c.id) },
      }, label, busy ? h("span", { class: "candidate-detail" }, "Selecting…") : null));
    })),
    entry.selectError ? h("p", { class: "inline-error", role: "alert" }, entry.selectError) : null);
}

function renderCustomerBody(section, entry, ctx) {
  const data = isPlainObject(section.data) ? section.data : {};
  const match = data.match;
  if (match === "several") {
    const candidates = Array.isArray(data.candidates) && data.candidates.length ? data.candidates : entry.card.candidates || [];
    return renderCandidates(entry, candidates, ctx);
  }
  if ((match === "one" || match === "selected") && isPlainObject(data.customer)) {
    const c = data.customer;
    const facts = { ...(isPlainObject(c.extra) ? c.extra : {}), phone: c.phone, customer_id: c.id };
    delete facts.name;
    if (orgLine(entry.card)) { delete facts.company; delete facts.city; } // already under the headline
    if (c.phone && c.phone === (entry.card.caller || {}).e164) delete facts.phone; // already in the headline
    const others = Array.isArray(data.candidates) ? data.candidates.length : 0;
    return [
      match === "selected" && others > 1
        ? h("p", { class: "muted small picked" }, `Picked from ${others} customers who share this number.`) : null,
      renderObject(facts),
    ];
  }
  if (match === "none") return h("p", { class: "muted" }, "No customer has this number.");
  return renderData(section.data);
}

// -- sections ---------------------------------------------------------------------------------------

function skeleton() {
  return h("div", { class: "skeleton" },
    h("span", { class: "visually-hidden" }, "Loading…"),
    h("span", { class: "skeleton-line", "aria-hidden": "true" }),
    h("span", { class: "skeleton-line skeleton-line--short", "aria-hidden": "true" }),
    h("span", { class: "skeleton-line", "aria-hidden": "true" }));
}

function metaLine(section) {
  const bits = [];
  if (section.source) bits.push(section.source);
  const latency = formatLatency(section.latency_ms);
  if (latency && section.status !== "pending") bits.push(latency);
  if (section.cached) bits.push("cached");
  return bits.length ? h("span", { class: "panel-meta" }, bits.join(" · ")) : null;
}

function renderSectionBody(section, entry, ctx) {
  const status = section.status || "pending";
  const isCustomer = section.name === "customer";
  if (status === "pending") return skeleton();
  if (status === "ok") return isCustomer ? renderCustomerBody(section, entry, ctx) : renderData(section.data);
  if (status === "stale") {
    const age = formatAge(section.age_s);
    return [
      h("p", { class: "mark mark--stale" }, h("strong", {}, "Stale"), age ? `, ${age} old` : ""),
      isCustomer ? renderCustomerBody(section, entry, ctx) : renderData(section.data),
    ];
  }
  if (status === "empty") {
    return h("p", { class: "muted" }, isCustomer ? "No customer found" : "No data",
      section.reason ? `: ${section.reason}` : "");
  }
  const word = FAILED[status] || humanise(status);
  return h("div", { class: ["mark", `mark--${FAILED[status] ? status : "error"}`], role: "note" },
    h("strong", { class: "mark-word" }, word),
    h("span", {}, section.reason || FAILED_HELP[status] || ""));
}

/** One section panel: data-section, data-status; its body by status. */
export function renderSection(section, entry, ctx) {
  const status = section.status || "pending";
  const headingId = uid("sec");
  return h("section", {
    class: ["panel", `panel--${status}`, isWide(section) ? "panel--wide" : ""],
    "data-section": section.name, "data-status": status, "aria-labelledby": headingId,
    "aria-busy": status === "pending" ? "true" : null, tabindex: "-1",
  },
  h("header", { class: "panel-head" },
    h("h3", { id: headingId }, section.title || humanise(section.name)),
    metaLine(section)),
  h("div", { class: "panel-body" }, renderSectionBody(section, entry, ctx)));
}

// -- cards ------------------------------------------------------------------------------------------

function signature(section, entry) {
  const extra = section.name === "customer" ? [entry.selecting, entry.selectError, entry.outcome] : [];
  return JSON.stringify([section, extra]);
}

/** A new card element for an entry {card, outcome, reason, selecting, selectError}. */
export function renderCard(entry, ctx) {
  const el = h("article", { class: "card" });
  patchCard(el, entry, ctx);
  return el;
}

/**
 * Bring a card element up to date. The head is rebuilt; a section panel is replaced only when its
 * section changed, and focus inside a replaced panel moves to its successor (same button or the panel).
 */
export function patchCard(el, entry, ctx) {
  const { card } = entry;
  const badge = badgeOf(entry, ctx.meId);
  if (!ctx.readOnly) el.setAttribute("data-call-id", card.call_id);
  el.setAttribute("data-state", entry.outcome || card.state || "ringing");
  el.setAttribute("data-match", matchOf(card));
  el.className = ["card", `card--${badge.kind}`, ctx.readOnly ? "card--recent" : ""].filter(Boolean).join(" ");
  let headingId = el.getAttribute("aria-labelledby");
  if (!headingId) {
    headingId = uid("call");
    el.setAttribute("aria-labelledby", headingId);
  }
  const head = renderHead(entry, ctx, headingId);
  const oldHead = el.querySelector(":scope > .card-head");
  if (oldHead) oldHead.replaceWith(head);
  else el.prepend(head);

  let grid = el.querySelector(":scope > .sections");
  if (!grid) {
    grid = h("div", { class: "sections" });
    el.appendChild(grid);
  }
  const existing = new Map();
  for (const panel of grid.querySelectorAll(":scope > .panel")) existing.set(panel.dataset.section, panel);
  let previous = null;
  for (const section of card.sections || []) {
    const sig = signature(section, entry);
    let panel = existing.get(section.name);
    existing.delete(section.name);
    if (!panel || panel._sig !== sig) {
      const fresh = renderSection(section, entry, ctx);
      fresh._sig = sig;
      if (panel) {
        const focused = panel.contains(document.activeElement) ? document.activeElement : null;
        panel.replaceWith(fresh);
        if (focused) restoreFocus(focused, fresh);
      }
      panel = fresh;
    }
    const want = previous ? previous.nextElementSibling : grid.firstElementChild;
    if (want !== panel) grid.insertBefore(panel, want);
    previous = panel;
  }
  for (const stale of existing.values()) stale.remove();
  return el;
}

function restoreFocus(old, panel) {
  const id = old.getAttribute && old.getAttribute("data-customer-id");
  const twin = id ? panel.querySelector(`[data-customer-id="${CSS.escape(id)}"]`) : null;
  (twin || panel).focus({ preventScroll: true });
}

/** A line in the "recent" list: a summary that opens on the greyed card. */
export function renderRecent(entry, ctx) {
  const badge = badgeOf(entry, ctx.meId);
  const number = callerNumber(entry.card);
  const card = renderCard(entry, { ...ctx, readOnly: true });
  return h("li", { class: "recent-item", "data-recent-call-id": entry.card.call_id },
    h("details", {},
      h("summary", {},
        h("span", { class: "recent-name" }, callerHeadline(entry.card)),
        h("span", { class: "recent-detail" },
          [badge.label, entry.reason, number].filter(Boolean).join(" · "))),
      card));
}
