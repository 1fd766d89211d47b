// The wrap-up on a card: notes, a disposition, an optional follow-up date, and Save. The element is built
// once per card and kept (typing is never interrupted by the card's updates); what the server says about
// the entry (`wrapup.state`: queued, saved, local, refused) is shown in its status line. The notes typed so
// far go to the server as a draft, so a transferred call shows them to the next agent.

import { api } from "./api.js";
import { h, uid } from "./dom.js";
import { formatDate } from "./format.js";
import { t, word } from "./i18n.js";
import { draftRequest, wrapupRequest } from "./protocol.js";

const DRAFT_DELAY_MS = 1500;

/** The wrap-up block of a card element: created on first call, its status brought up to date after. */
export function ensureWrapup(el, entry, ctx) {
  let block = el.querySelector(":scope > .wrapup");
  if (!block) {
    block = build(entry, ctx);
    el.appendChild(block);
  }
  update(block, entry, ctx);
  return block;
}

function build(entry, ctx) {
  const callId = entry.card.call_id;
  const ids = { notes: uid("notes"), disp: uid("disp"), follow: uid("follow"), title: uid("wrapup") };
  const notes = h("textarea", { id: ids.notes, class: "wrapup-notes", rows: "3", maxlength: "10000",
    "data-testid": "wrapup-notes", "data-shortcut": "notes" });
  const disposition = h("select", { id: ids.disp, class: "wrapup-disposition", required: true,
    "data-testid": "wrapup-disposition" },
  h("option", { value: "" }, t("wrapup.choose")),
  (ctx.settings.dispositions || []).map((d) => h("option", { value: d.id }, word(d.label))));
  const follow = h("input", { id: ids.follow, type: "date", class: "wrapup-follow", "data-testid": "wrapup-follow-up" });
  const save = h("button", { type: "submit", class: "btn btn--primary", "data-testid": "wrapup-save",
    "data-shortcut": "save" }, t("wrapup.save"));
  const status = h("p", { class: "wrapup-status", role: "status", "data-testid": "wrapup-state" });
  const carried = h("div", { class: "wrapup-carried", "data-testid": "wrapup-carried", hidden: true });
  const close = h("button", { type: "button", class: "btn btn--quiet wrapup-close", "data-testid": "wrapup-close",
    hidden: true, on: { click: () => ctx.onDismiss(callId) } }, t("wrapup.close"));
  const form = h("form", { class: "wrapup", "aria-labelledby": ids.title, "data-testid": "wrapup", novalidate: true },
    h("h3", { id: ids.title, class: "wrapup-title" }, t("wrapup.title")),
    carried,
    h("label", { for: ids.notes }, t("wrapup.notes")), notes,
    h("div", { class: "wrapup-row" },
      h("div", { class: "wrapup-field" }, h("label", { for: ids.disp }, t("wrapup.disposition")), disposition),
      h("div", { class: "wrapup-field" }, h("label", { for: ids.follow }, t("wrapup.follow_up")), follow),
      h("div", { class: "wrapup-actions" }, save, close)),
    status);
  let timer = null;
  notes.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => ctx.send(draftRequest(callId, notes.value)), DRAFT_DELAY_MS);
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    clearTimeout(timer);
    if (!disposition.value) {
      showStatus(status, "error", t("wrapup.need_disposition"));
      disposition.setAttribute("aria-invalid", "true");
      disposition.focus();
      return;
    }
    disposition.removeAttribute("aria-invalid");
    const request = wrapupRequest(callId, { notes: notes.value, disposition: disposition.value, followUp: follow.value });
    if (!ctx.send(request)) {
      showStatus(status, "error", t("wrapup.not_connected"));
      return;
    }
    showStatus(status, "sending", t("wrapup.sending"));
  });
  loadEarlier(callId, entry, ctx, { notes, disposition, follow, carried }, form);
  return form;
}

/** Restore what the server has for this call: this agent's entry (after a reload) and others' notes. */
async function loadEarlier(callId, entry, ctx, fields, form) {
  let rows = [];
  try {
    rows = (await api("GET", `/api/calls/${encodeURIComponent(callId)}/wrapups`)).wrapups || [];
  } catch {
    return; // nothing earlier, or not reachable: the form works without it
  }
  const others = rows.filter((r) => r.agent !== ctx.meId && r.notes);
  if (others.length) {
    fields.carried.hidden = false;
    fields.carried.replaceChildren(...others.map((r) => h("p", {},
      h("strong", {}, t("wrapup.notes_from", { agent: r.agent_name || r.agent })), " ", r.notes)));
    if (!fields.notes.value) fields.notes.value = others.map((r) => r.notes).join("\n");
  }
  const mine = rows.find((r) => r.agent === ctx.meId);
  if (mine && !entry.card.wrapup) {
    if (!fields.notes.value || others.length) fields.notes.value = mine.notes;
    if (mine.state !== "draft") {
      fields.disposition.value = mine.disposition || "";
      fields.follow.value = mine.follow_up || "";
      entry.card.wrapup = mine;
      update(form, entry, ctx);
    }
  }
}

function showStatus(status, state, text) {
  status.dataset.state = state;
  status.textContent = text;
}

/** The status line from the card's `wrapup` (the last `wrapup.state`). */
function update(block, entry, ctx) {
  const w = entry.card.wrapup;
  const status = block.querySelector(".wrapup-status");
  const done = w && (w.state === "saved" || w.state === "local");
  block.querySelector(".wrapup-close").hidden = !(entry.card.state === "ended" || done);
  if (!w || status.dataset.key === JSON.stringify(w)) return;
  status.dataset.key = JSON.stringify(w);
  const follow = w.follow_up ? formatDate(w.follow_up) || w.follow_up : "";
  const what = [word(labelOf(ctx, w.disposition)), follow ? t("wrapup.follow_up_on", { date: follow }) : ""]
    .filter(Boolean).join(", ");
  if (w.state === "saved") showStatus(status, "saved", `${t("wrapup.saved")} (${what})`);
  else if (w.state === "local") showStatus(status, "saved", `${t("wrapup.saved_local")} (${what})`);
  else if (w.state === "queued") {
    showStatus(status, "queued", w.last_error
      ? t("wrapup.retrying", { error: w.last_error, attempts: w.attempts })
      : t("wrapup.queued"));
  } else if (w.state === "refused") showStatus(status, "error", t("wrapup.refused", { reason: w.last_error || "" }));
  const save = block.querySelector("[data-testid=wrapup-save]");
  save.textContent = done ? t("wrapup.saved_button") : t("wrapup.save");
  save.disabled = Boolean(done);
}

function labelOf(ctx, id) {
  const d = (ctx.settings.dispositions || []).find((x) => x.id === id);
  return d ? d.label : id;
}
