// The test lookup: a number in; per connector a bar on a time axis (identity first, then the sections in
// parallel) with latency, status, cache state, reason and mapped data; then the card as an agent sees it,
// drawn by the agent console's own renderer (web/js/render.js and its views).

import { api, clear, h, ms, statusBadge } from "./ui.js";
import { renderCard } from "../../js/render.js";

const SVG = "http://www.w3.org/2000/svg";
const LABELS = 170; // the connectors' names, left of the time axis
const WIDTH = 620; // the time axis
const BAR = 18;
const ROW = BAR + 10;

function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children) el.append(c);
  return el;
}

/** The bars: from start to end on a time axis up to the lookup's deadline (or what it took), one row each. */
function chart(rows, span) {
  const scale = WIDTH / span;
  const height = rows.length * ROW + 26;
  const axis = svg("g", { class: "wf-axis" });
  const steps = 4;
  for (let i = 0; i <= steps; i += 1) {
    const x = LABELS + Math.round((WIDTH * i) / steps);
    axis.append(svg("line", { x1: x, x2: x, y1: 0, y2: height - 20, class: "wf-tick" }),
      svg("text", { x, y: height - 6, class: "wf-label", "text-anchor": i === 0 ? "start" : i === steps ? "end" : "middle" },
        `${Math.round((span * i) / steps)} ms`));
  }
  const bars = rows.map((r, i) => {
    const x = Math.min(WIDTH - 2, r.start_ms * scale);
    const w = Math.max(3, Math.min(WIDTH - x, (r.end_ms - r.start_ms) * scale));
    const y = i * ROW + 4;
    return svg("g", { "data-connector": r.connector },
      svg("text", { x: 0, y: y + BAR - 4, class: "wf-name" }, (r.connector || r.section).slice(0, 22)),
      svg("rect", { x: LABELS + x, y, width: w, height: BAR, rx: 3, class: `wf-bar wf-bar--${r.status}` },
        svg("title", {}, `${r.connector}: ${r.status}, ${ms(r.latency_ms)}`)),
      svg("text", { x: Math.min(LABELS + x + w + 6, LABELS + WIDTH - 60), y: y + BAR - 4, class: "wf-label" }, ms(r.latency_ms)));
  });
  return svg("svg", { viewBox: `0 0 ${LABELS + WIDTH + 10} ${height}`, class: "wf-chart", role: "img", "aria-label": "Time line of the lookup; the table below has the same numbers" }, axis, ...bars);
}

function dataCell(row) {
  if (row.data === null || row.data === undefined) return h("span", { class: "muted" }, "—");
  return h("details", {}, h("summary", {}, "Mapped data"), h("pre", { class: "mono small" }, JSON.stringify(row.data, null, 2)));
}

function render(result) {
  const holder = document.getElementById("waterfall");
  const span = Math.max(result.deadline_ms || 0, ...result.rows.map((r) => r.end_ms), 1);
  // identity first, then the sections by when they started
  const rows = [...result.rows].sort((x, y) => (x.section === "customer" ? -1 : y.section === "customer" ? 1 : x.start_ms - y.start_ms));
  clear(holder).append(
    h("div", { class: "wf" }, chart(rows, span)),
    h("div", { class: "table-wrap" },
      h("table", { class: "grid", "data-testid": "waterfall-table" },
        h("caption", { class: "visually-hidden" }, "Each connector of the lookup"),
        h("thead", {}, h("tr", {}, ["Connector", "Section", "Start", "Latency", "Status", "Cache", "Reason", "Data"]
          .map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, rows.map((r) => h("tr", { "data-connector": r.connector, "data-status": r.status },
          h("th", { scope: "row" }, r.connector || "—"),
          h("td", {}, r.section),
          h("td", { class: "num" }, ms(r.start_ms)),
          h("td", { class: "num", "data-testid": "latency" }, ms(r.latency_ms)),
          h("td", {}, statusBadge(r.status, "status")),
          h("td", { "data-testid": "cache" }, r.age_s !== null && r.age_s !== undefined ? `${r.cache} (${r.age_s} s old)` : r.cache),
          h("td", {}, r.reason || ""),
          h("td", {}, dataCell(r))))))));
  const card = document.getElementById("lookup-card");
  clear(card).append(renderCard({ card: result.card }, { meId: null, readOnly: true, onSelect: () => {} }));
}

export function start() {
  const form = document.getElementById("lookup-form");
  const status = document.getElementById("lookup-status");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const number = document.getElementById("lookup-number").value.trim();
    const customer = document.getElementById("lookup-customer").value.trim();
    status.textContent = "Looking up…";
    try {
      const result = await api("POST", "/api/admin/lookup/waterfall", customer ? { number, customer_id: customer } : { number });
      render(result);
      const failed = result.rows.filter((r) => !["ok", "empty", "stale"].includes(r.status)).length;
      status.textContent = `Done in ${ms(result.elapsed_ms)}: ${result.rows.length} connectors, ${failed} not ok.`;
    } catch (err) {
      status.textContent = err.message;
    }
  });
}

export function stop() {}
