// Keyboard shortcuts on the newest active card (or the card that holds the focus). Single keys act only
// when the focus is not in a text field; Ctrl+Enter saves the wrap-up from anywhere, Escape closes the
// help. `?` shows the list.
//
//   1-9   choose that candidate (several customers share the number) or that search result
//   o     open the customer in the CRM              n   focus the notes
//   /     focus the search                          Ctrl+Enter   save the wrap-up
//   c     focus the card                            ?   this help

import { h } from "./dom.js";
import { t } from "./i18n.js";

export const SHORTCUTS = [
  ["1 … 9", "keys.choose"],
  ["o", "keys.open"],
  ["n", "keys.notes"],
  ["/", "keys.search"],
  ["Ctrl + Enter", "keys.save"],
  ["c", "keys.card"],
  ["?", "keys.help"],
];

function typing(target) {
  return target instanceof HTMLElement && (target.isContentEditable
    || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));
}

/** The card the shortcuts act on: the one holding the focus, else the newest active one. */
function currentCard() {
  const focused = document.activeElement && document.activeElement.closest
    ? document.activeElement.closest("article.card[data-call-id]") : null;
  return focused || document.querySelector("#calls article.card[data-call-id]");
}

function focusIn(card, selector) {
  const el = card && card.querySelector(selector);
  if (!el) return false;
  el.focus();
  return true;
}

/** Fill the help dialog and wire the shortcuts. */
export function installShortcuts(dialog) {
  renderHelp(dialog);
  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.altKey || event.metaKey) return;
    const card = currentCard();
    if (event.key === "Enter" && event.ctrlKey) {
      const save = card && card.querySelector("[data-shortcut=save]");
      if (save && !save.disabled) {
        event.preventDefault();
        save.closest("form").requestSubmit(save);
      }
      return;
    }
    if (event.ctrlKey || typing(event.target)) return;
    let done = false;
    if (event.key === "?") {
      renderHelp(dialog);
      if (!dialog.open) dialog.showModal();
      done = true;
    } else if (/^[1-9]$/.test(event.key) && card) {
      const choices = card.querySelectorAll("button[data-customer-id], button[data-found-id]");
      const choice = choices[Number(event.key) - 1];
      if (choice) {
        choice.focus();
        choice.click();
        done = true;
      }
    } else if (event.key === "o" && card) {
      const link = card.querySelector("a[data-shortcut=open]");
      if (link) {
        link.focus();
        link.click();
        done = true;
      }
    } else if (event.key === "n") done = focusIn(card, "[data-shortcut=notes]");
    else if (event.key === "/") done = focusIn(card, "[data-shortcut=search]");
    else if (event.key === "c" && card) {
      card.focus();
      done = true;
    }
    if (done) event.preventDefault();
  });
}

export function renderHelp(dialog) {
  const list = dialog.querySelector("dl");
  list.replaceChildren(...SHORTCUTS.map(([key, what]) => h("div", { class: "kv-row" },
    h("dt", {}, h("kbd", {}, key)), h("dd", {}, t(what)))));
}
