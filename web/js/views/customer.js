// The `customer` view: the identity match. One customer (their details), none, or several to choose from
// (the agent's choice goes back through ctx.onSelect). Its data is {match, customer, candidates}.

import { h } from "../dom.js";
import { t } from "../i18n.js";
import { isPlainObject, renderData, renderObject } from "./values.js";

/** The card's section shown by the `customer` view, or null. */
export function customerSection(card) {
  return (card.sections || []).find((s) => s.view && s.view.kind === "customer") || null;
}

/** How far the identity lookup got: "pending" | "one" | "none" | "several" ("selected" counts as "one"). */
export function matchOf(card) {
  const s = customerSection(card);
  if (!s || s.status === "pending") return card.customer ? "one" : "pending";
  const match = isPlainObject(s.data) ? s.data.match : null;
  if (match === "one" || match === "none" || match === "several") return match;
  if (card.customer) return "one";
  if ((card.candidates || []).length > 1) return "several";
  return "none";
}

/** The customer's company and city, for the card's headline. */
export function orgLine(card) {
  if (matchOf(card) !== "one" || !card.customer) return "";
  const extra = card.customer.extra || {};
  return [extra.company, extra.city].filter((v) => typeof v === "string" && v.trim()).join(" · ");
}

function renderCandidates(entry, candidates, ctx) {
  const selecting = entry.selecting;
  const readOnly = ctx.readOnly || entry.outcome;
  return h("div", { class: "candidates" },
    h("p", {}, t("customer.share", { n: candidates.length })),
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
      }, label, busy ? h("span", { class: "candidate-detail" }, t("customer.selecting")) : null));
    })),
    entry.selectError ? h("p", { class: "inline-error", role: "alert" }, entry.selectError) : null);
}

export function render(section, columns, entry, ctx) {
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
        ? h("p", { class: "muted small picked" }, t("customer.picked", { n: others })) : null,
      renderObject(facts, columns ? columns.filter((col) => col.key in facts) : null),
    ];
  }
  if (match === "none") return h("p", { class: "muted" }, t("customer.none"));
  return renderData(section.data);
}

/** A choice among several customers takes the card's full width. */
export function wide(section) {
  return matchOf({ sections: [section] }) === "several";
}

export const emptyText = "customer.not_found";

/** What else, beyond the section, changes this view: the agent's choice on its way, and its outcome. */
export function state(entry) {
  return [entry.selecting, entry.selectError, entry.outcome];
}
