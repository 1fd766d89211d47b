// The live view (supervisors and admins): the calls ringing and answered now, who has which card and how
// long their browser took to show it, and every connector's health; it refreshes itself every 2 seconds.

import { api, clear, h, ms, notice, pct, session, statusBadge, table } from "./ui.js";

const EVERY_MS = 2000;

function renderCalls(calls) {
  const holder = document.getElementById("live-calls");
  if (!calls.length) {
    clear(holder).append(h("p", { class: "muted", "data-testid": "no-calls" }, "No call is ringing or answered right now."));
    return;
  }
  clear(holder).append(table("Calls now", [
    { label: "Caller", cell: (c) => c.caller },
    { label: "Customer", cell: (c) => c.customer || h("span", { class: "muted" }, "unknown") },
    { label: "State", cell: (c) => statusBadge(c.state, "live-state") },
    { label: "Since", cell: (c) => (c.started_at ? new Date(c.started_at).toLocaleTimeString() : "") },
    {
      label: "Agents (card shown after)",
      cell: (c) => h("ul", { class: "plain" }, c.agents.map((a) => h("li", { "data-agent": a.id },
        `${a.name}${c.answered_by === a.id ? " (answered)" : ""}: `,
        a.display_ms === null || a.display_ms === undefined ? h("span", { class: "muted" }, "not shown yet") : ms(a.display_ms)))),
    },
  ], calls.map((c) => ({ ...c, _attrs: { "data-call-id": c.call_id, "data-state": c.state } }))));
}

function renderConnectors(connectors) {
  clear(document.getElementById("live-connectors")).append(...connectors.map((c) => h("div", {
    class: ["health", `health--${c.breaker}`], "data-connector": c.name,
  }, h("span", { class: "health-name" }, c.name),
  h("span", { class: "small" }, `breaker ${c.breaker.replace("_", "-")} · p95 ${ms(c.latency.p95_ms)} · errors ${pct(c.error_rate)}`))));
}

async function tick() {
  const status = document.getElementById("live-status");
  try {
    const body = await api("GET", "/api/admin/live");
    renderCalls(body.calls);
    renderConnectors(body.connectors);
    status.textContent = `Updated ${new Date(body.at).toLocaleTimeString()}`;
    notice("");
  } catch (err) {
    notice(err.message);
  }
  setTimeout(tick, EVERY_MS);
}

async function main() {
  let me;
  try {
    me = await session();
  } catch (err) {
    notice(err.message);
    return;
  }
  document.getElementById("admin-link").hidden = me.role !== "admin";
  tick();
}

main();
