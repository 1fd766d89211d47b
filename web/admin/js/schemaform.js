// Forms built from a JSON schema (pydantic's model_json_schema): every connector kind, also a plugin's, gets
// its form without front-end code. Each field carries data-path (e.g. "options.url") so the server's 422
// ("options.url: ...; timeout_ms: ...") is shown next to the field it names.
//
// Secret fields (format "password" / writeOnly, as pydantic's SecretStr) and values the server returned as
// "********" are shown as set or not set, with a "Replace" button: left alone, the redaction mark goes back
// and the server keeps the stored secret.

import { h, uid } from "../../js/dom.js";

export const REDACTED = "********";

function humanise(key) {
  const s = String(key).replace(/_/g, " ");
  return s.charAt(0).toUpperCase() + s.slice(1);
}

function resolve(schema, root) {
  let s = schema || {};
  for (let i = 0; i < 10 && s.$ref; i += 1) {
    const name = s.$ref.split("/").pop();
    s = { ...((root.$defs || {})[name] || {}), ...Object.fromEntries(Object.entries(s).filter(([k]) => k !== "$ref")) };
  }
  return s;
}

/** {schema, nullable}: `anyOf: [X, {type: null}]` is an optional X. */
function unwrap(schema, root) {
  const s = resolve(schema, root);
  if (Array.isArray(s.anyOf)) {
    const others = s.anyOf.filter((x) => x.type !== "null");
    if (others.length === 1) return { schema: { ...resolve(others[0], root), title: s.title, description: s.description, default: s.default }, nullable: true };
  }
  return { schema: s, nullable: false };
}

function isSecret(s) {
  return s.format === "password" || s.writeOnly === true;
}

function isStringMap(s) {
  return s.type === "object" && !s.properties && s.additionalProperties && resolveType(s.additionalProperties) === "string";
}

function resolveType(s) {
  return s && (s.type || (s.enum ? "string" : undefined));
}

/** A field's wrapper: label, hint, control, error line. */
function wrap(path, label, control, { hint = "", required = false, inline = false } = {}) {
  const errorId = uid("err");
  control.setAttribute("aria-describedby", errorId);
  return h("div", { class: ["field", inline ? "field--inline" : ""], "data-path": path },
    inline ? [control, h("label", { for: control.id }, label)] : [h("label", { for: control.id }, label, required ? h("span", { class: "muted" }, " (required)") : null), control],
    hint ? h("p", { class: "hint small muted" }, hint) : null,
    h("p", { class: "field-error", id: errorId, role: "alert", hidden: true }));
}

function secretField(path, label, current, required) {
  const id = uid("f");
  const input = h("input", { id, type: "password", autocomplete: "new-password", "data-secret": "", "aria-label": label });
  const has = current !== undefined && current !== null && current !== "";
  const state = h("span", { class: ["secret-state", has ? "secret-state--set" : ""], "data-testid": "secret-state" }, has ? "set" : "not set");
  const replace = h("button", { type: "button", class: "btn btn--small" }, "Replace");
  const box = h("div", { class: "secret" }, state, has ? replace : null, input);
  input.hidden = has;
  replace.addEventListener("click", () => {
    input.hidden = false;
    replace.hidden = true;
    input.focus();
  });
  const field = wrap(path, label, box, { required });
  box.removeAttribute("aria-describedby");
  input.setAttribute("aria-describedby", field.querySelector(".field-error").id);
  field.querySelector("label").setAttribute("for", id);
  return {
    el: field,
    read: () => (input.hidden ? (has ? current : undefined) : (input.value === "" ? (has ? current : undefined) : input.value)),
  };
}

function jsonField(path, label, current, hint) {
  const id = uid("f");
  const text = current === undefined || current === null ? "" : JSON.stringify(current, null, 2);
  const area = h("textarea", { id, rows: Math.min(8, Math.max(2, text.split("\n").length)), spellcheck: "false", class: "mono" });
  area.value = text;
  const field = wrap(path, label, area, { hint: hint || "JSON" });
  return {
    el: field,
    read: () => {
      if (!area.value.trim()) return undefined;
      try {
        return JSON.parse(area.value);
      } catch {
        throw new FieldError(path, "not valid JSON");
      }
    },
  };
}

export class FieldError extends Error {
  constructor(path, message) {
    super(`${path}: ${message}`);
    this.path = path;
  }
}

function mapField(path, label, current, hint) {
  const id = uid("f");
  const area = h("textarea", { id, rows: 3, spellcheck: "false", class: "mono" });
  area.value = current ? Object.entries(current).map(([k, v]) => `${k}: ${v}`).join("\n") : "";
  const field = wrap(path, label, area, { hint: [hint, "One per line: name: value"].filter(Boolean).join(" — ") });
  return {
    el: field,
    read: () => {
      const out = {};
      for (const line of area.value.split("\n")) {
        if (!line.trim()) continue;
        const at = line.indexOf(":");
        if (at <= 0) throw new FieldError(path, `"${line.trim()}": write name: value`);
        out[line.slice(0, at).trim()] = line.slice(at + 1).trim();
      }
      return Object.keys(out).length ? out : undefined;
    },
  };
}

function variantField(path, label, s, current, root, hint) {
  // oneOf with a discriminator: a choice of variant, then that variant's fields
  const prop = s.discriminator.propertyName;
  const variants = s.oneOf.map((v) => resolve(v, root));
  const tags = variants.map((v) => (v.properties[prop] || {}).const || v.title);
  const id = uid("f");
  const select = h("select", { id }, h("option", { value: "" }, "none"), tags.map((t) => h("option", { value: t }, t)));
  const holder = h("div", { class: "variant" });
  let inner = null;
  const show = (value) => {
    holder.replaceChildren();
    inner = null;
    const i = tags.indexOf(select.value);
    if (i < 0) return;
    const sub = { ...variants[i], properties: { ...variants[i].properties } };
    delete sub.properties[prop];
    inner = objectFields(path, sub, value || {}, root);
    holder.append(inner.el);
  };
  select.value = current && current[prop] ? current[prop] : "";
  show(current);
  select.addEventListener("change", () => show({}));
  const field = wrap(path, label, select, { hint });
  field.append(holder);
  return {
    el: field,
    read: () => (inner ? { [prop]: select.value, ...inner.read() } : undefined),
  };
}

/** One field for `schema` at `path`; {el, read()} where read() gives the value or undefined (left out). */
export function fieldFor(path, key, propSchema, current, root, required = false) {
  const { schema: s, nullable } = unwrap(propSchema, root);
  const label = humanise(key);
  const hint = s.description || (s.default !== undefined && s.default !== null && typeof s.default !== "object" ? `Default: ${s.default}` : "");
  if (s.oneOf && s.discriminator) return variantField(path, label, s, current, root, hint);
  if (isSecret(s) || current === REDACTED) return secretField(path, label, current, required);
  if (s.const !== undefined) return { el: h("span", { hidden: true }), read: () => s.const };
  const id = uid("f");
  if (Array.isArray(s.enum)) {
    const select = h("select", { id },
      (!required || nullable) ? h("option", { value: "" }, s.default !== undefined ? `default (${s.default})` : "—") : null,
      s.enum.map((v) => h("option", { value: String(v) }, String(v))));
    select.value = current !== undefined && current !== null ? String(current) : (required ? String(s.enum[0]) : "");
    return { el: wrap(path, label, select, { hint, required }), read: () => (select.value === "" ? undefined : select.value) };
  }
  if (s.type === "boolean") {
    const box = h("input", { id, type: "checkbox" });
    box.checked = current !== undefined && current !== null ? Boolean(current) : Boolean(s.default);
    return { el: wrap(path, label, box, { hint, inline: true }), read: () => box.checked };
  }
  if (s.type === "integer" || s.type === "number") {
    const input = h("input", { id, type: "number", step: s.type === "integer" ? "1" : "any", inputmode: "decimal" });
    for (const [attr, key2] of [["min", "minimum"], ["max", "maximum"]]) if (s[key2] !== undefined) input.setAttribute(attr, s[key2]);
    input.value = current !== undefined && current !== null ? String(current) : "";
    input.placeholder = s.default !== undefined && s.default !== null ? String(s.default) : "";
    return {
      el: wrap(path, label, input, { hint, required }),
      read: () => (input.value === "" ? undefined : Number(input.value)),
    };
  }
  if (s.type === "string") {
    const input = h("input", { id, type: "text", autocomplete: "off", spellcheck: "false" });
    if (required) input.required = true;
    input.value = current !== undefined && current !== null ? String(current) : "";
    return { el: wrap(path, label, input, { hint, required }), read: () => (input.value === "" ? undefined : input.value) };
  }
  if (s.type === "array" && resolveType(resolve(s.items, root)) === "string" && !(resolve(s.items, root).enum)) {
    const input = h("input", { id, type: "text", autocomplete: "off" });
    input.value = Array.isArray(current) ? current.join(", ") : "";
    return {
      el: wrap(path, label, input, { hint: [hint, "Separated by commas"].filter(Boolean).join(" — ") }),
      read: () => (input.value.trim() ? input.value.split(",").map((x) => x.trim()).filter(Boolean) : undefined),
    };
  }
  if (isStringMap(s)) return mapField(path, label, current, hint);
  if (s.type === "object" && s.properties) {
    const inner = objectFields(path, s, current || {}, root);
    const read = () => {  // nothing filled in: left out (the server's default, or none)
      const value = inner.read();
      return Object.keys(value).length || (current && !nullable) ? value : undefined;
    };
    return { el: h("fieldset", { class: "group", "data-path": path }, h("legend", {}, label), inner.el), read };
  }
  return jsonField(path, label, current, hint);
}

/** Every property of an object schema as fields; {el, read()}. `skip` leaves keys out. */
export function objectFields(prefix, schema, value, root, skip = []) {
  const s = resolve(schema, root);
  const required = new Set(s.required || []);
  const fields = [];
  for (const [key, prop] of Object.entries(s.properties || {})) {
    if (skip.includes(key)) continue;
    fields.push([key, fieldFor(prefix ? `${prefix}.${key}` : key, key, prop, value ? value[key] : undefined, root, required.has(key))]);
  }
  return {
    el: h("div", { class: "fields" }, fields.map(([, f]) => f.el)),
    read: () => {
      const out = {};
      for (const [key, f] of fields) {
        const v = f.read();
        if (v !== undefined) out[key] = v;
      }
      return out;
    },
  };
}

/** Clear every field error inside `form`. */
export function clearErrors(form) {
  for (const p of form.querySelectorAll(".field-error")) {
    p.hidden = true;
    p.textContent = "";
  }
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
}

/**
 * Put each problem of a server message ("where: what; where: what") next to the field it names (the
 * longest data-path it mentions); returns the problems that name no field. Focuses the first one.
 */
export function showErrors(form, message) {
  const paths = [...form.querySelectorAll("[data-path]")].map((el) => el.getAttribute("data-path"));
  const rest = [];
  let first = null;
  for (const part of String(message).split("; ")) {
    let best = null;
    for (const p of paths) {
      const at = part.indexOf(p);
      const fits = at >= 0 && [":", ".", "["].includes(part.charAt(at + p.length))
        && (at === 0 || [" ", "(", "."].includes(part.charAt(at - 1)));
      if (fits && (!best || p.length > best.length)) best = p;
    }
    const field = best ? form.querySelector(`[data-path="${CSS.escape(best)}"]`) : null;
    const line = field ? field.querySelector(":scope > .field-error") : null;
    if (!line) {
      rest.push(part);
      continue;
    }
    line.textContent = part.slice(part.indexOf(best));
    line.hidden = false;
    const control = field.querySelector("input:not([hidden]), select, textarea");
    if (control) control.setAttribute("aria-invalid", "true");
    if (!first) first = control;
  }
  if (first) first.focus();
  return rest;
}
