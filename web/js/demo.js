// The demo's "Simulate a call" block (shown only when the server runs `screenpop demo`).

import { api, ApiError } from "./api.js";
import { h } from "./dom.js";
import { t } from "./i18n.js";

const DEMO_PICKS = [
  ["+14155550100", "demo.known"],
  ["+14155550199", "demo.unknown"],
  ["+14155550111", "demo.two"],
];

const $ = (id) => document.getElementById(id);

/** Show the demo block: a number field and quick picks that ring the logged-in agent. */
export function setupDemo(goLogin) {
  const box = $("demo");
  const form = $("demo-form");
  const input = $("demo-number");
  const status = $("demo-status");
  const picks = $("demo-picks");
  for (const [number, label] of DEMO_PICKS) {
    picks.appendChild(h("li", {}, h("button", {
      type: "button", class: "btn btn--small", "data-number": number,
      on: { click: () => { input.value = number; ring(number); } },
    }, number, " ", h("span", { class: "pick-label" }, `(${t(label)})`))));
  }
  async function ring(number) {
    status.className = "demo-status";
    status.textContent = t("demo.calling", { number });
    try {
      const answer = await api("POST", "/api/demo/call", { number });
      status.textContent = t("demo.ringing", { id: answer && answer.call_id ? answer.call_id : "", number });
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) return goLogin();
      status.className = "demo-status inline-error";
      status.textContent = err.message;
    }
  }
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const number = input.value.trim();
    if (!number) {
      status.className = "demo-status inline-error";
      status.textContent = t("demo.enter_number");
      input.focus();
      return;
    }
    ring(number);
  });
  box.hidden = false;
}
