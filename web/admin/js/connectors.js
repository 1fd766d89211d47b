// The connectors tab: every connector with its live health, the editor (forms from each kind's JSON
// schema), delete, and import/export of the YAML config format.

import { api, clear, h, notice, pct, ms, statusBadge, table } from "./ui.js";
import { clearErrors, FieldError, objectFields, showErrors } from "./schemaform.js";

const COMMON_SKIP = ["name", "kind", "options"];
let kinds = null; // {connector: schema, kinds: [{kind, doc, options}]}
let timer = null;

async function schemas() {
  if (!kinds) kinds = await api("GET", "/api/admin/kinds");
  return kinds;
}

function breakerBadge(state) {
  const label = { closed: "closed", open: "open", half_open: "half-open" }[state] || state || "—";
  return h("span", { class: ["status", `status--breaker-${state || "none"}`] }, label);
}

export async function refresh(force = true) {
  const list = document.getElementById("connector-list");
  if (!force && list.contains(document.activeElement)) return; // never pull the table from under the keyboard
  let connectors;
  let health;
  try {
    [connectors, health] = await Promise.all([api("GET", "/api/admin/connectors"), api("GET", "/api/admin/health")]);
  } catch (err) {
    notice(err.message);
    return;
  }
  const byName = new Map(health.connectors.map((c) => [c.name, c]));
  const rows = connectors.connectors.map((c) => ({ ...c, health: byName.get(c.name) || null, _attrs: { "data-connector": c.name } }));
  const hv = (row, f) => (row.health ? f(row.health) : "—");
  clear(list).append(table("Connectors and their health", [
    { label: "Name", cell: (r) => r.name },
    { label: "Kind", cell: (r) => r.kind },
    { label: "Role", cell: (r) => (r.enabled === false ? `${r.role} (off)` : r.role) },
    { label: "Breaker", cell: (r) => (r.health ? breakerBadge(r.health.breaker) : "—") },
    { label: "p50", num: true, cell: (r) => hv(r, (x) => ms(x.latency.p50_ms)) },
    { label: "p95", num: true, cell: (r) => hv(r, (x) => ms(x.latency.p95_ms)) },
    { label: "Errors", num: true, cell: (r) => hv(r, (x) => pct(x.error_rate)) },
    { label: "Timeouts", num: true, cell: (r) => hv(r, (x) => pct(x.timeout_rate)) },
    { label: "Cache hits", num: true, cell: (r) => hv(r, (x) => pct(x.cache_hit_rate)) },
    { label: "In flight", num: true, cell: (r) => hv(r, (x) => String(x.in_flight)) },
    { label: "From", cell: (r) => r.origin },
    {
      label: "Actions",
      cell: (r) => h("span", { class: "row-actions" },
        h("button", { type: "button", class: "btn btn--small", "aria-label": `Edit ${r.name}`, on: { click: () => edit(r) } }, "Edit"),
        h("button", { type: "button", class: "btn btn--small", "aria-label": `Delete ${r.name}`, on: { click: () => remove(r.name) } }, "Delete")),
    },
  ], rows));
}

async function remove(name) {
  if (!window.confirm(`Delete the connector ${name}? Calls stop using it at once, on every instance.`)) return;
  try {
    await api("DELETE", `/api/admin/connectors/${encodeURIComponent(name)}`);
    notice("");
    await refresh();
  } catch (err) {
    notice(err.message);
  }
}

/** Open the editor: `current` is a connector (edit) or null (new). */
export async function edit(current) {
  const { connector, kinds: sectionKinds, journal_kinds: journalKinds = [] } = await schemas();
  // a `journal` connector (wrap-ups written back) has kinds of its own: the form follows the role
  let list = current && current.role === "journal" ? journalKinds : sectionKinds;
  const holder = document.getElementById("connector-editor");
  const isNew = !current;
  const nameId = "connector-name";
  const kindId = "connector-kind";
  const nameInput = h("input", { id: nameId, type: "text", required: true, autocomplete: "off", pattern: "[A-Za-z0-9_.\\-]{1,64}" });
  nameInput.value = current ? current.name : "";
  nameInput.disabled = !isNew;
  const kindSelect = h("select", { id: kindId }, list.map((k) => h("option", { value: k.kind }, k.kind)));
  kindSelect.value = current ? current.kind : "http";
  const fieldErr = (path) => h("p", { class: "field-error", role: "alert", hidden: true, id: `err-${path}` });
  const nameField = h("div", { class: "field", "data-path": "name" }, h("label", { for: nameId }, "Name", h("span", { class: "muted" }, " (required)")), nameInput, fieldErr("name"));
  const kindDoc = h("p", { class: "hint small muted" });
  const kindField = h("div", { class: "field", "data-path": "kind" }, h("label", { for: kindId }, "Kind"), kindSelect, kindDoc, fieldErr("kind"));
  nameInput.setAttribute("aria-describedby", "err-name");
  kindSelect.setAttribute("aria-describedby", "err-kind");
  const common = objectFields("", connector, current || {}, connector, COMMON_SKIP);
  const optionsBox = h("fieldset", { class: "group", "data-path": "options" }, h("legend", {}, "Options of the kind"));
  let options = null;
  const showOptions = (value) => {
    const kind = list.find((k) => k.kind === kindSelect.value);
    kindDoc.textContent = kind ? kind.doc : "";
    optionsBox.replaceChildren(h("legend", {}, `Options of the ${kindSelect.value} kind`));
    options = kind ? objectFields("options", kind.options, value || {}, kind.options) : null;
    if (options) optionsBox.append(options.el, h("p", { class: "field-error", role: "alert", hidden: true }));
  };
  const general = h("p", { class: "inline-error", role: "alert", hidden: true, "data-testid": "form-error" });
  const form = h("form", { class: "box editor", novalidate: true, "aria-labelledby": "editor-title", "data-testid": "connector-form" },
    h("h2", { id: "editor-title" }, isNew ? "Add a connector" : `Edit ${current.name}`),
    general,
    h("div", { class: "fields" }, nameField, kindField),
    optionsBox,
    h("details", { class: "advanced" }, h("summary", {}, "Role, limits, cache, view, masking"), common.el),
    h("div", { class: "form-actions" },
      h("button", { type: "submit", class: "btn btn--primary btn--small" }, isNew ? "Add" : "Save"),
      h("button", { type: "button", class: "btn btn--small", on: { click: () => clear(holder) } }, "Cancel")));
  // the role is the one thing most admins set: show it outside the "advanced" part
  const role = common.el.querySelector('[data-path="role"]');
  if (role) form.querySelector(".fields").append(role);
  showOptions(current ? current.options : {});
  kindSelect.addEventListener("change", () => showOptions({}));
  const roleSelect = role ? role.querySelector("select") : null;
  if (roleSelect) {
    roleSelect.addEventListener("change", () => {
      const wanted = roleSelect.value === "journal" ? journalKinds : sectionKinds;
      if (wanted === list) return;
      list = wanted;
      const keep = list.some((k) => k.kind === kindSelect.value) ? kindSelect.value : (list[0] || {}).kind;
      kindSelect.replaceChildren(...list.map((k) => h("option", { value: k.kind }, k.kind)));
      if (keep) kindSelect.value = keep;
      showOptions({});
    });
  }
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    general.hidden = true;
    const name = nameInput.value.trim();
    let body;
    try {
      if (!name) throw new FieldError("name", "a name is required");
      body = { ...common.read(), kind: kindSelect.value, options: options ? options.read() : {} };
    } catch (err) {
      const rest = showErrors(form, err.message);
      if (rest.length) { general.textContent = rest.join("; "); general.hidden = false; }
      return;
    }
    try {
      await api("PUT", `/api/admin/connectors/${encodeURIComponent(name)}`, body);
    } catch (err) {
      const rest = showErrors(form, err.message);
      if (rest.length) {
        general.textContent = rest.join("; ");
        general.hidden = false;
      }
      return;
    }
    await refresh(); // the list first: its Edit buttons then hold what was just saved
    clear(holder);
    notice("");
    const row = document.querySelector(`[data-connector="${CSS.escape(name)}"] button`);
    if (row) row.focus();
  });
  clear(holder).append(form);
  (isNew ? nameInput : kindSelect).focus();
}

function importForm() {
  const form = document.getElementById("config-import");
  const text = document.getElementById("config-import-text");
  const error = document.getElementById("config-import-error");
  document.getElementById("config-import-open").addEventListener("click", () => {
    form.hidden = false;
    text.focus();
  });
  document.getElementById("config-import-cancel").addEventListener("click", () => { form.hidden = true; });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    try {
      const response = await fetch("/api/admin/config", {
        method: "POST", body: JSON.stringify({ yaml: text.value }), credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
      });
      const payload = await response.json().catch(() => ({}));
      if (!response.ok) throw new Error(payload.error || `The server answered ${response.status}.`);
      form.hidden = true;
      text.value = "";
      notice(`Imported: ${payload.imported.join(", ") || "nothing"}.`);
      await refresh();
    } catch (err) {
      error.textContent = err.message;
      error.hidden = false;
      text.setAttribute("aria-invalid", "true");
    }
  });
}

export function start() {
  document.getElementById("connector-new").addEventListener("click", () => edit(null));
  importForm();
  refresh();
  timer = setInterval(() => refresh(false), 5000);
}

export function stop() {
  if (timer) clearInterval(timer);
  timer = null;
}
