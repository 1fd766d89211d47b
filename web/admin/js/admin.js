// The admin console: one page, one tab per concern (the URL's #hash), each tab a module.

import { notice, session } from "./ui.js";
import * as connectors from "./connectors.js";
import * as waterfall from "./waterfall.js";
import * as agents from "./agents.js";
import * as access from "./access.js";

const TABS = ["connectors", "lookup", "agents", "access", "changes"];
const started = new Set();

function show() {
  const tab = TABS.includes(location.hash.slice(1)) ? location.hash.slice(1) : "connectors";
  for (const name of TABS) {
    document.getElementById(`tab-${name}`).hidden = name !== tab;
    const link = document.querySelector(`[data-tab="${name}"]`);
    if (name === tab) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  notice("");
  if (!started.has(tab)) {
    started.add(tab);
    if (tab === "connectors") connectors.start();
    if (tab === "lookup") waterfall.start();
    if (tab === "agents") agents.start();
    if (tab === "access") access.start();
  }
  if (tab === "access") access.refresh();
  if (tab === "changes") access.refreshChanges();
  if (tab === "agents" && started.has("agents")) agents.refresh();
}

async function main() {
  try {
    await session();
  } catch (err) {
    notice(err.message);
    return;
  }
  window.addEventListener("hashchange", () => {
    show();
    document.getElementById("main").focus();
  });
  show();
}

main();
