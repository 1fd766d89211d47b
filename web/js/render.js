// Rendering of call cards: the caller headline, the state badge, one panel per section.
// Builds DOM nodes only (textContent and attributes, see dom.js): every string from the server is escaped.

import { h, uid } from "./dom.js";
import { formatAge, formatClock, formatLatency, humanise } from "./format.js";
import { t, word } from "./i18n.js";
import { fillLink } from "./links.js";
import { ensureSearch } from "./search.js";
import { matchOf, orgLine } from "./views/customer.js";
import { emptyText, isWide, renderBody, viewState } from "./views/index.js";
import { ensureWrapup } from "./wrapup.js";

export { matchOf };

const FAILED = { timeout: "section.timeout", error: "section.error", unavailable: "section.unavailable" };
const FAILED_HELP = {
  timeout: "section.timeout_help",
  error: "section.error_help",
  unavailable: "section.unavailable_help",
};

// -- the caller -------------------------------------------------------------------------------------

/** The headline of a card: the customer's name, or what is known about the caller. */
export function callerHeadline(card) {
  const caller = card.caller || {};
  if (caller.status === "withheld") return t("caller.withheld");
  if (caller.status === "invalid") return t("caller.invalid");
  const match = matchOf(card);
  if (match === "one" && card.customer && card.customer.name) return card.customer.name;
  if (match === "several") {
    const n = (card.candidates || []).length;
    return n > 1 ? t("caller.possible", { n }) : t("caller.several");
  }
  if (match === "pending") return t("caller.identifying");
  return t("caller.unknown");
}

function callerNumber(card) {
  const caller = card.caller || {};
  if (caller.status === "withheld") return "";
  return caller.display || caller.e164 || caller.raw || "";
}

/** The badge of a call: {label, kind} from its state and what happened to it here. */
export function badgeOf(entry, meId) {
  if (entry.outcome === "withdrawn") return { label: t("state.withdrawn"), kind: "withdrawn" };
  if (entry.outcome === "ended" || entry.card.state === "ended") return { label: t("state.ended"), kind: "ended" };
  if (entry.card.state === "answered") {
    const by = entry.card.answered_by;
    if (!by || by === meId) return { label: t("state.answered"), kind: "answered" };
    return { label: t("state.answered_elsewhere"), kind: "withdrawn" };
  }
  if (entry.card.state === "offered") return { label: t("state.incoming"), kind: "ringing" };
  return { label: t("state.ringing"), kind: "ringing" };
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
        card.called ? h("span", { class: "muted" }, t("card.to", { number: card.called })) : null,
        started ? h("span", { class: "muted" }, t("card.since", { time: started })) : null,
        card.transferred_from
          ? h("span", { class: "muted", "data-testid": "transferred-from" },
            t("card.transferred_from", { agent: card.transferred_from }))
          : null)),
    h("span", { class: ["badge", `badge--${badge.kind}`], "data-testid": "call-state" }, badge.label));
}

// -- sections ---------------------------------------------------------------------------------------

function skeleton() {
  return h("div", { class: "skeleton" },
    h("span", { class: "visually-hidden" }, t("section.loading")),
    h("span", { class: "skeleton-line", "aria-hidden": "true" }),
    h("span", { class: "skeleton-line skeleton-line--short", "aria-hidden": "true" }),
    h("span", { class: "skeleton-line", "aria-hidden": "true" }));
}

function metaLine(section) {
  const bits = [];
  if (section.source) bits.push(section.source);
  const latency = formatLatency(section.latency_ms);
  if (latency && section.status !== "pending") bits.push(latency);
  if (section.cached) bits.push(t("section.cached"));
  return bits.length ? h("span", { class: "panel-meta" }, bits.join(" · ")) : null;
}

function renderSectionBody(section, entry, ctx) {
  const status = section.status || "pending";
  if (status === "pending") return skeleton();
  if (status === "ok") return renderBody(section, entry, ctx);
  if (status === "stale") {
    const age = formatAge(section.age_s);
    return [
      h("p", { class: "mark mark--stale" }, h("strong", {}, t("section.stale")),
        age ? ` ${t("section.age", { age })}` : ""),
      renderBody(section, entry, ctx),
    ];
  }
  if (status === "empty") {
    return h("p", { class: "muted" }, emptyText(section), section.reason ? `: ${section.reason}` : "");
  }
  const label = FAILED[status] ? t(FAILED[status]) : humanise(status);
  return h("div", { class: ["mark", `mark--${FAILED[status] ? status : "error"}`], role: "note" },
    h("strong", { class: "mark-word" }, label),
    h("span", {}, section.reason || (FAILED_HELP[status] ? t(FAILED_HELP[status]) : "")));
}

/** The section's links to other systems ("Open in CRM"), filled from the card's customer. */
function renderLinks(section, entry, ctx) {
  const templates = ((ctx.settings || {}).links || {})[section.name] || [];
  const customer = entry.card.customer;
  if (!templates.length || !customer || section.status === "pending") return null;
  const caller = entry.card.caller || {};
  const values = { ...(customer.extra || {}), customer_id: customer.id, name: customer.name,
    phone: customer.phone || caller.e164 || "" };
  const links = templates.map((link, i) => {
    const href = fillLink(link.url, values);
    return href ? h("a", { href, target: "_blank", rel: "noopener noreferrer", class: "btn btn--small",
      "data-testid": "crm-link", "data-shortcut": i === 0 && section.name === "customer" ? "open" : null },
    word(link.label)) : null;
  }).filter(Boolean);
  return links.length ? h("p", { class: "panel-links" }, links) : null;
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
    h("h3", { id: headingId }, word(section.title) || humanise(section.name)),
    metaLine(section)),
  h("div", { class: "panel-body" }, renderSectionBody(section, entry, ctx)),
  renderLinks(section, entry, ctx));
}

// -- cards ------------------------------------------------------------------------------------------

function signature(section, entry) {
  return JSON.stringify([section, viewState(section, entry), section.name === "customer" ? entry.card.customer : null]);
}

/** A new card element for an entry {card, outcome, reason, selecting, selectError}. */
export function renderCard(entry, ctx) {
  const el = h("article", { class: "card", tabindex: ctx.readOnly ? null : "-1" });
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
  if (!ctx.readOnly) {
    const match = matchOf(card);
    const mine = !card.answered_by || card.answered_by === ctx.meId;
    ensureSearch(el, entry, ctx, Boolean((ctx.settings || {}).search) && !entry.outcome && mine
      && (match === "none" || match === "several") && (card.caller || {}).status !== "invalid");
    if (mine && entry.outcome !== "withdrawn" && ctx.settings) ensureWrapup(el, entry, ctx);
  }
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
