// The access audit tab: who was shown which customer (by customer, by agent, since a date), as CSV too;
// and the changes tab: what administrators changed.

import { api, clear, h, ms, notice, table, when } from "./ui.js";

function query() {
  const params = new URLSearchParams();
  for (const name of ["customer", "agent", "since"]) {
    const value = document.getElementById(`access-${name}`).value.trim();
    if (value) params.set(name, value);
  }
  return params;
}

export async function refresh() {
  const params = query();
  document.getElementById("access-csv").setAttribute("href", `/api/admin/access.csv?${params}`);
  let body;
  try {
    body = await api("GET", `/api/admin/access?${params}`);
  } catch (err) {
    notice(err.message);
    return;
  }
  document.getElementById("retention").textContent = String(body.retention_days);
  const holder = document.getElementById("access-list");
  if (!body.entries.length) {
    clear(holder).append(h("p", { class: "muted" }, "Nobody was shown a matching card."));
    return;
  }
  clear(holder).append(table("Access audit", [
    { label: "When", cell: (r) => when(r.at) },
    { label: "Agent", cell: (r) => r.agent },
    { label: "Action", cell: (r) => r.action },
    { label: "Customer", cell: (r) => r.customer_id || h("span", { class: "muted" }, "not identified") },
    { label: "Call", cell: (r) => r.call_id },
    { label: "Sections", cell: (r) => (r.sections || []).join(", ") },
    { label: "Masked", cell: (r) => (r.masked ? "yes" : "no") },
    { label: "Display", num: true, cell: (r) => (r.latency_ms === null ? "" : ms(r.latency_ms)) },
  ], body.entries.map((r) => ({ ...r, _attrs: { "data-agent": r.agent, "data-action": r.action } }))));
}

export async function refreshChanges() {
  let body;
  try {
    body = await api("GET", "/api/admin/audit?limit=200");
  } catch (err) {
    notice(err.message);
    return;
  }
  clear(document.getElementById("changes-list")).append(table("Changes", [
    { label: "When", cell: (r) => when(r.at) },
    { label: "Who", cell: (r) => r.actor },
    { label: "What", cell: (r) => r.action },
    { label: "Target", cell: (r) => r.target || "" },
    { label: "Detail", cell: (r) => h("details", {}, h("summary", {}, "Show"), h("pre", { class: "mono small" }, JSON.stringify(r.detail, null, 2))) },
  ], body.entries));
}

export function start() {
  document.getElementById("access-form").addEventListener("submit", (event) => {
    event.preventDefault();
    refresh();
  });
}
