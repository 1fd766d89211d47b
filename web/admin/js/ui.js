// Small helpers the admin pages share: the page notice, tables, numbers, the session.

import { api } from "../../js/api.js";
import { h, clear } from "../../js/dom.js";

export { api, h, clear };

/** Show (or with "" hide) the page's notice line. */
export function notice(message) {
  const el = document.getElementById("notice");
  if (!el) return;
  el.textContent = message || "";
  el.hidden = !message;
}

/** A table: `columns` [{label, cell(row) -> node|string, num?}], a caption, the rows. */
export function table(caption, columns, rows, attrs = {}) {
  return h("div", { class: "table-wrap" },
    h("table", { class: "grid", ...attrs },
      h("caption", { class: "visually-hidden" }, caption),
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col", class: c.num ? "num" : null }, c.label)))),
      h("tbody", {}, rows.map((row) => h("tr", row._attrs || {},
        columns.map((c, i) => (i === 0
          ? h("th", { scope: "row" }, c.cell(row))
          : h("td", { class: c.num ? "num" : null }, c.cell(row)))))))));
}

/** Milliseconds as "12 ms", or "—". */
export function ms(value) {
  return value === null || value === undefined ? "—" : `${Math.round(value * 10) / 10} ms`;
}

/** A share (0..1) as "12.5 %", or "—". */
export function pct(value) {
  return value === null || value === undefined ? "—" : `${Math.round(value * 1000) / 10} %`;
}

/** Unix seconds as a local date and time. */
export function when(seconds) {
  return new Date(seconds * 1000).toLocaleString();
}

/** A status word with its colour class (ok, error, timeout, ...). */
export function statusBadge(status, testid = null) {
  return h("span", { class: ["status", `status--${status}`], "data-testid": testid }, status);
}

/** Who is signed in; sends strangers to the sign-in page. Wires the log-out button. */
export async function session() {
  const me = await api("GET", "/api/me").catch((err) => {
    if (err.status === 401) location.replace("/login");
    throw err;
  });
  const line = document.getElementById("me");
  if (line) line.textContent = `${me.name} (${me.role})`;
  document.getElementById("logout").addEventListener("click", async () => {
    await api("POST", "/api/logout").catch(() => null);
    location.replace("/login");
  });
  return me;
}
