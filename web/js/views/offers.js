// The `offers` view: suggestions, best first, with the reason an agent can say out loud. The first column
// is the offer's name, the second why it is offered; the others follow in a muted line ("SKU EL-4001 ·
// Price $42.00"). Offers with a `list` field ("again" or "fits", the offers connector) are shown as two
// lists: "Likely to order again" (a due product is marked) and "Fits what they bought".

import { h } from "../dom.js";
import { t } from "../i18n.js";
import { MAX_ROWS, isPlainObject, labelOf, renderList, renderValue } from "./values.js";

const LISTS = [
  ["again", "Likely to order again"],
  ["fits", "Fits what they bought"],
];

function renderOffer(offer, name, why, rest) {
  return h("li", { class: ["offer", offer.due === true && "offer--due"], "data-sku": offer.sku ?? null },
    h("span", { class: "offer-name" }, renderValue(offer[name.key], name.key, offer, name.format),
      offer.due === true ? h("span", { class: "flag flag--due" }, "due") : null),
    offer[why.key] ? h("span", { class: "offer-why" }, renderValue(offer[why.key], why.key, offer, why.format)) : null,
    rest.some((c) => offer[c.key] != null) ? h("span", { class: "offer-meta muted small" },
      rest.filter((c) => offer[c.key] != null).map((c, i) => [
        i ? " · " : "", `${labelOf(c)} `, renderValue(offer[c.key], c.key, offer, c.format)])) : null);
}

export function render(section, columns) {
  const list = Array.isArray(section.data) ? section.data.filter(isPlainObject) : [];
  if (!columns || columns.length < 2) return renderList(list, columns);
  if (!list.length) return h("p", { class: "muted" }, t("value.no_offers"));
  const [name, why, ...rest] = columns;
  if (!list.some((offer) => typeof offer.list === "string")) {
    return h("ol", { class: "offer-list" }, list.slice(0, MAX_ROWS).map((o) => renderOffer(o, name, why, rest)));
  }
  return h("div", { class: "offer-lists" }, LISTS.map(([kind, title]) => {
    const mine = list.filter((offer) => offer.list === kind).slice(0, MAX_ROWS);
    if (!mine.length) return null;
    return h("section", { class: "offer-group", "data-offer-list": kind, "aria-label": title },
      h("h4", { class: "offer-heading" }, title),
      h("ol", { class: "offer-list" }, mine.map((o) => renderOffer(o, name, why, rest))));
  }));
}

export function wide(section) {
  return Array.isArray(section.data) && section.data.length > 0;
}
