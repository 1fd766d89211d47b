// The agents tab: list, create, edit (name, role, extensions, addresses), disable, reset the password,
// sign out everywhere. Changes are live on every instance when the server answers.

import { api, clear, h, notice, table } from "./ui.js";
import { clearErrors, showErrors } from "./schemaform.js";

const ROLES = ["agent", "supervisor", "admin"];

function list(text) {
  return text.split(",").map((x) => x.trim()).filter(Boolean);
}

export async function refresh() {
  const holder = document.getElementById("agent-list");
  let body;
  try {
    body = await api("GET", "/api/admin/agents");
  } catch (err) {
    notice(err.message);
    return;
  }
  clear(holder).append(table("Agents", [
    { label: "Id", cell: (a) => a.id },
    { label: "Name", cell: (a) => a.name || "" },
    { label: "Role", cell: (a) => a.role },
    { label: "Extensions", cell: (a) => a.extensions.join(", ") },
    { label: "Addresses", cell: (a) => a.addresses.join(", ") },
    { label: "State", cell: (a) => (a.disabled ? h("span", { class: "status status--error" }, "disabled") : "active") },
    { label: "From", cell: (a) => a.origin },
    {
      label: "Actions",
      cell: (a) => h("span", { class: "row-actions" },
        h("button", { type: "button", class: "btn btn--small", "aria-label": `Edit ${a.id}`, on: { click: () => edit(a) } }, "Edit"),
        h("button", { type: "button", class: "btn btn--small", "aria-label": `Sign ${a.id} out everywhere`, on: { click: () => signOut(a.id) } }, "Sign out everywhere")),
    },
  ], body.agents.map((a) => ({ ...a, _attrs: { "data-agent": a.id } }))));
}

async function signOut(id) {
  try {
    await api("DELETE", `/api/admin/agents/${encodeURIComponent(id)}/sessions`);
    notice(`${id} is signed out on every device.`);
  } catch (err) {
    notice(err.status === 404 || err.status === 405 ? "Signing out everywhere needs server-side sessions, which this server does not have." : err.message);
  }
}

function field(path, label, control, hint = "") {
  const id = `agent-${path}`;
  control.id = id;
  control.setAttribute("aria-describedby", `${id}-err`);
  return h("div", { class: "field", "data-path": path },
    h("label", { for: id }, label), control,
    hint ? h("p", { class: "hint small muted" }, hint) : null,
    h("p", { class: "field-error", id: `${id}-err`, role: "alert", hidden: true }));
}

/** The agent form: `agent` to edit, or null for a new one. */
export function edit(agent) {
  const holder = document.getElementById("agent-editor");
  const isNew = !agent;
  const a = agent || { id: "", name: "", role: "agent", extensions: [], addresses: [], disabled: false };
  const id = h("input", { type: "text", autocomplete: "off", required: true });
  id.value = a.id;
  id.disabled = !isNew;
  const name = h("input", { type: "text", autocomplete: "off" });
  name.value = a.name || "";
  const role = h("select", {}, ROLES.map((r) => h("option", { value: r }, r)));
  role.value = a.role;
  const ext = h("input", { type: "text", autocomplete: "off" });
  ext.value = a.extensions.join(", ");
  const addr = h("input", { type: "text", autocomplete: "off" });
  addr.value = a.addresses.join(", ");
  const password = h("input", { type: "password", autocomplete: "new-password" });
  const disabled = h("input", { type: "checkbox", id: "agent-disabled" });
  disabled.checked = a.disabled;
  const general = h("p", { class: "inline-error", role: "alert", hidden: true });
  const form = h("form", { class: "box editor", novalidate: true, "aria-labelledby": "agent-editor-title", "data-testid": "agent-form" },
    h("h2", { id: "agent-editor-title" }, isNew ? "Add an agent" : `Edit ${a.id}`),
    general,
    h("div", { class: "fields" },
      field("id", "Username (agent id)", id, "Letters, digits, . _ -"),
      field("name", "Name", name),
      field("role", "Role", role, "supervisor: the live view; admin: this console"),
      field("extensions", "Extensions", ext, "Separated by commas, e.g. 1001"),
      field("addresses", "Other addresses", addr, "Separated by commas, e.g. client:alice, sip:alice@pbx"),
      field("password", isNew ? "Password" : "New password", password, isNew ? "At least 8 characters" : "Leave empty to keep the current one"),
      h("div", { class: "field field--inline", "data-path": "disabled" }, disabled, h("label", { for: "agent-disabled" }, "Disabled (cannot sign in, no calls)"),
        h("p", { class: "field-error", role: "alert", hidden: true }))),
    h("div", { class: "form-actions" },
      h("button", { type: "submit", class: "btn btn--primary btn--small" }, isNew ? "Add" : "Save"),
      !isNew ? h("button", { type: "button", class: "btn btn--small", on: { click: () => remove(a.id, holder) } }, "Delete") : null,
      h("button", { type: "button", class: "btn btn--small", on: { click: () => clear(holder) } }, "Cancel")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    general.hidden = true;
    const body = {
      id: id.value.trim(), name: name.value.trim(), role: role.value, extensions: list(ext.value),
      addresses: list(addr.value), disabled: disabled.checked,
    };
    if (password.value) body.password = password.value;
    try {
      if (isNew) await api("POST", "/api/admin/agents", body);
      else await api("PUT", `/api/admin/agents/${encodeURIComponent(a.id)}`, body);
    } catch (err) {
      const rest = showErrors(form, err.message);
      if (rest.length) {
        general.textContent = rest.join("; ");
        general.hidden = false;
        general.focus();
      }
      return;
    }
    clear(holder);
    notice(isNew ? `Agent ${body.id} added: they can sign in now.` : `Agent ${body.id} saved.`);
    await refresh();
  });
  clear(holder).append(form);
  (isNew ? id : name).focus();
}

async function remove(id, holder) {
  if (!window.confirm(`Delete the agent ${id}? They are signed out and no call rings for them.`)) return;
  try {
    await api("DELETE", `/api/admin/agents/${encodeURIComponent(id)}`);
    clear(holder);
    await refresh();
  } catch (err) {
    notice(err.message);
  }
}

export function start() {
  document.getElementById("agent-new").addEventListener("click", () => edit(null));
  refresh();
}

export function stop() {}
