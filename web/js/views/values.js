// Values, records and lists of section data for people, shared by the views. A view's `columns`
// ({key, label, format}) pick, order, name and format the fields; without them every field is shown,
// labelled by its key, formatted by its key and value (money, dates, numbers, yes/no).

import { h } from "../dom.js";
import { t, word } from "../i18n.js";
import { fillLink } from "../links.js";
import {
  currencyKeys, currencyOf, formatDate, formatMoney, formatNumber, humanise, isMoneyKey,
} from "../format.js";

const WARN_WHEN_TRUE = new Set(["hold", "on_hold", "credit_hold", "blocked", "suspended", "blacklisted"]);
const WARN_WHEN_POSITIVE = new Set(["overdue", "amount_overdue", "overdue_amount", "past_due"]);
export const MAX_ROWS = 50;

export function isPlainObject(v) {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** The view's columns, or null when it names none. */
export function columnsOf(section) {
  const cols = section && section.view && Array.isArray(section.view.columns) ? section.view.columns : [];
  return cols.length ? cols : null;
}

export function labelOf(column) {
  return word(column.label || humanise(column.key));
}

export function warnRow(key, value) {
  const k = String(key).toLowerCase();
  if (WARN_WHEN_TRUE.has(k)) return value === true;
  if (WARN_WHEN_POSITIVE.has(k)) return typeof value === "number" ? value > 0 : Number(value) > 0;
  return false;
}

/** One value in a declared format ("money", "number", "percent", "date", "yesno", "text"). */
function formatted(value, format, parent) {
  if (format === "money") {
    const money = formatMoney(value, currencyOf(parent));
    return money === null ? null : h("span", { class: "num" }, money);
  }
  if (format === "number" && typeof value === "number") return h("span", { class: "num" }, formatNumber(value));
  if (format === "percent" && typeof value === "number") {
    return h("span", { class: "num" }, `${formatNumber(Math.round(value * 100))} %`);
  }
  if (format === "date") return document.createTextNode(formatDate(value) ?? String(value));
  if (format === "yesno") return h("span", {}, value ? t("value.yes") : t("value.no"));
  if (format === "text") return document.createTextNode(String(value));
  return null;
}

/** One value: in its column's format when one is declared, else by its key and type. */
export function renderValue(value, key = "", parent = null, format = null) {
  if (value === null || value === undefined || value === "") return h("span", { class: "muted" }, "—");
  if (format) {
    const node = formatted(value, format, parent);
    if (node) return node;
  }
  if (typeof value === "boolean") {
    const warn = value && WARN_WHEN_TRUE.has(String(key).toLowerCase());
    return h("span", { class: warn ? "flag flag--warn" : "" }, value ? t("value.yes") : t("value.no"));
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

/** Long text (an e-mail, a note) reads better under its label than squeezed beside it. */
function isLong(v) {
  return typeof v === "string" && v.length > 28 && formatDate(v) === null;
}

/** A record as a label/value list: the given columns, or every field (currency shown with the amounts). */
export function renderObject(obj, columns = null) {
  let cols = columns;
  if (!cols) {
    const hidden = currencyOf(obj) && hasMoney(obj) ? new Set(currencyKeys(obj)) : new Set();
    cols = Object.keys(obj).filter((k) => !hidden.has(k)).map((key) => ({ key }));
  }
  if (!cols.length) return h("p", { class: "muted" }, t("value.no_data"));
  return h("dl", { class: "kv" },
    cols.map((c) => {
      const v = obj[c.key];
      return h("div", {
        class: ["kv-row", warnRow(c.key, v) ? "kv-row--warn" : "", isLong(v) ? "kv-row--stack" : ""], "data-key": c.key,
      },
      h("dt", {}, labelOf(c)),
      h("dd", {}, renderValue(v, c.key, obj, c.format)));
    }));
}

/** A list: a table of records (the given columns, or every field), a bulleted list otherwise. */
export function renderList(list, columns = null, rowLinks = null) {
  if (!list.length) return h("p", { class: "muted" }, t("value.nothing_recent"));
  if (!list.every(isPlainObject)) {
    return h("ul", { class: "plain-list" }, list.slice(0, MAX_ROWS).map((v) => h("li", {}, renderValue(v))));
  }
  let cols = columns;
  if (!cols) {
    const keys = [];
    for (const row of list) for (const k of Object.keys(row)) if (!keys.includes(k)) keys.push(k);
    const hide = new Set();
    if (keys.some(isMoneyKey) && list.every((row) => currencyOf(row))) {
      for (const row of list) for (const k of currencyKeys(row)) hide.add(k);
    }
    cols = keys.filter((k) => !hide.has(k)).map((key) => ({ key }));
  }
  const numeric = new Set(cols.filter((c) => ["money", "number", "percent"].includes(c.format) || list.every((row) =>
    row[c.key] === null || row[c.key] === undefined || typeof row[c.key] === "number"
    || (isMoneyKey(c.key) && formatMoney(row[c.key], null) !== null))).map((c) => c.key));
  const rows = list.slice(0, MAX_ROWS);
  const table = h("table", { class: ["data-table", cols.length > 4 ? "data-table--many" : ""] },
    h("thead", {}, h("tr", {}, cols.map((c) => h("th", { scope: "col", class: numeric.has(c.key) ? "num" : "" }, labelOf(c))))),
    h("tbody", {}, rows.map((row) => h("tr", {},
      cols.map((c) => h("td", {
        class: [numeric.has(c.key) ? "num" : "", warnRow(c.key, row[c.key]) ? "cell--warn" : ""],
        "data-label": labelOf(c),
      }, linked(renderValue(row[c.key], c.key, row, c.format), rowLinks && rowLinks[c.key], row)))))));
  const more = list.length > rows.length
    ? h("p", { class: "muted small" }, t("value.more", { n: list.length - rows.length })) : null;
  return h("div", { class: "table-wrap" }, table, more);
}

/** A cell's content as a link to its record elsewhere, when the config has a template for its column. */
function linked(content, template, row) {
  const href = template ? fillLink(template, row) : null;
  return href ? h("a", { href, target: "_blank", rel: "noopener noreferrer", "data-testid": "row-link" }, content) : content;
}

/** Any data, by its shape. */
export function renderData(data, columns = null) {
  if (data === null || data === undefined) return h("p", { class: "muted" }, t("value.no_data"));
  if (Array.isArray(data)) return renderList(data, columns);
  if (isPlainObject(data)) return renderObject(data, columns);
  return h("p", {}, renderValue(data));
}
