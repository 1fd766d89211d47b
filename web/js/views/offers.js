// The `offers` view: suggestions, best first. The first column is the offer's name, the second why it is
// offered; the others follow in a muted line ("SKU EL-4001 · Score 77 %").

import { h } from "../dom.js";
import { t } from "../i18n.js";
import { MAX_ROWS, isPlainObject, labelOf, renderList, renderValue } from "./values.js";

export function render(section, columns) {
  const list = Array.isArray(section.data) ? section.data.filter(isPlainObject) : [];
  if (!columns || columns.length < 2) return renderList(list, columns);
  if (!list.length) return h("p", { class: "muted" }, t("value.no_offers"));
  const [name, why, ...rest] = columns;
  return h("ol", { class: "offer-list" }, list.slice(0, MAX_ROWS).map((offer) => h("li", { class: "offer" },
    h("span", { class: "offer-name" }, renderValue(offer[name.key], name.key, offer, name.format)),
    offer[why.key] ? h("span", { class: "offer-why" }, renderValue(offer[why.key], why.key, offer, why.format)) : null,
    rest.length ? h("span", { class: "offer-meta muted small" }, rest.filter((c) => offer[c.key] != null).map((c, i) => [
      i ? " · " : "", `${labelOf(c)} `, renderValue(offer[c.key], c.key, offer, c.format)])) : null)));
}

export function wide(section) {
  return Array.isArray(section.data) && section.data.length > 0;
}
