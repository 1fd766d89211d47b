// The search by hand, on a card whose caller is unknown or matches several customers: the agent types a
// name, a company or another number, picks the customer found, and the call is attached to them (the card
// then fills like any other). A configured "new customer" link opens the CRM's create page with the number.

import { api, ApiError } from "./api.js";
import { h, uid } from "./dom.js";
import { t } from "./i18n.js";
import { fillLink } from "./links.js";

/** The search block of a card element (kept while it is needed; removed once the caller is known). */
export function ensureSearch(el, entry, ctx, needed) {
  let block = el.querySelector(":scope > .search");
  if (!needed) {
    if (block) block.remove();
    return null;
  }
  if (!block) {
    block = build(entry, ctx);
    const wrapup = el.querySelector(":scope > .wrapup");
    el.insertBefore(block, wrapup);
  }
  return block;
}

function build(entry, ctx) {
  const callId = entry.card.call_id;
  const inputId = uid("search");
  const input = h("input", { id: inputId, type: "search", class: "search-input", minlength: "2", maxlength: "100",
    autocomplete: "off", "data-testid": "search-input", "data-shortcut": "search" });
  const results = h("ul", { class: "search-results", "data-testid": "search-results" });
  const status = h("p", { class: "search-status small", role: "status" });
  const caller = entry.card.caller || {};
  const newUrl = fillLink(ctx.settings.new_customer_url, { phone: caller.e164 || caller.raw || "" });
  const form = h("form", { class: "search", role: "search", "data-testid": "search" },
    h("label", { for: inputId }, t("search.label")),
    h("div", { class: "search-row" }, input,
      h("button", { type: "submit", class: "btn" }, t("search.button"))),
    status, results,
    newUrl ? h("p", { class: "small" }, h("a", { href: newUrl, target: "_blank", rel: "noopener noreferrer",
      "data-testid": "new-customer" }, t("search.new_customer"))) : null);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const q = input.value.trim();
    results.replaceChildren();
    if (q.length < 2) {
      status.textContent = t("search.too_short");
      return;
    }
    status.textContent = t("search.searching");
    try {
      const answer = await api("GET", `/api/search?q=${encodeURIComponent(q)}`);
      const found = answer.customers || [];
      status.textContent = found.length ? t("search.found", { n: found.length }) : t("search.none");
      results.replaceChildren(...found.map((c) => resultItem(c, q, callId, status)));
      const first = results.querySelector("button");
      if (first) first.focus();
    } catch (err) {
      status.textContent = err instanceof ApiError ? err.message : String(err);
    }
  });
  return form;
}

function resultItem(c, q, callId, status) {
  const extra = c.extra || {};
  const detail = [extra.company, extra.city, c.phone].filter((v) => typeof v === "string" && v.trim()).join(" · ");
  return h("li", {}, h("button", {
    type: "button", class: "candidate", "data-found-id": c.id,
    on: { click: async (event) => {
      const button = event.currentTarget;
      button.setAttribute("aria-busy", "true");
      status.textContent = t("search.attaching", { name: c.name });
      try {
        await api("POST", `/api/calls/${encodeURIComponent(callId)}/attach`, { customer_id: c.id, q });
      } catch (err) {
        button.removeAttribute("aria-busy");
        status.textContent = err instanceof ApiError ? err.message : String(err);
      }
    } },
  }, h("span", { class: "candidate-name" }, c.name), detail ? h("span", { class: "candidate-detail" }, detail) : null));
}
