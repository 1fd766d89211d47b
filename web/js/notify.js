// Desktop notifications and an optional sound when a card pops while the console is hidden. Each agent
// chooses (kept in localStorage per agent); the browser's permission is asked only from the agent's click
// on the setting. Clicking a notification brings the console forward and focuses the card.

import { t } from "./i18n.js";

const STORE = "screenpop.notify";

let agentKey = STORE;

/** The logged-in agent's choices (off until they turn them on). */
export function loadPrefs(agentId) {
  agentKey = `${STORE}.${agentId}`;
  try {
    const p = JSON.parse(localStorage.getItem(agentKey) || "{}");
    return { desktop: p.desktop === true, sound: p.sound === true };
  } catch {
    return { desktop: false, sound: false };
  }
}

export function savePrefs(prefs) {
  try {
    localStorage.setItem(agentKey, JSON.stringify(prefs));
  } catch {
    // storage disabled: the choice lasts for this page
  }
}

/** The permission for desktop notifications: "granted", "denied", "default" or "unsupported". */
export function permission() {
  return typeof Notification === "undefined" ? "unsupported" : Notification.permission;
}

/** Ask for the permission (call it from a click or a key press). Resolves to the permission. */
export async function askPermission() {
  if (typeof Notification === "undefined") return "unsupported";
  if (Notification.permission !== "default") return Notification.permission;
  return Notification.requestPermission();
}

let audio = null;
/** A short two-tone chime through Web Audio (no file to fetch). */
export function chime() {
  try {
    audio = audio || new AudioContext();
    const now = audio.currentTime;
    for (const [i, freq] of [[0, 880], [1, 660]]) {
      const osc = audio.createOscillator();
      const gain = audio.createGain();
      osc.frequency.value = freq;
      gain.gain.setValueAtTime(0.0001, now + i * 0.18);
      gain.gain.exponentialRampToValueAtTime(0.2, now + i * 0.18 + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, now + i * 0.18 + 0.16);
      osc.connect(gain).connect(audio.destination);
      osc.start(now + i * 0.18);
      osc.stop(now + i * 0.18 + 0.17);
    }
  } catch {
    // no audio output: the notification still shows
  }
}

/**
 * A card popped: when the page is hidden, notify (and chime) as the agent chose. `focusCard()` runs when
 * the notification is clicked. Returns the Notification, or null.
 */
export function cardPopped(prefs, { callId, title, body }, focusCard) {
  if (!document.hidden) return null;
  if (prefs.sound) chime();
  if (!prefs.desktop || permission() !== "granted") return null;
  const n = new Notification(title || t("notify.title"), { body, tag: `screenpop-${callId}`, requireInteraction: false });
  n.onclick = () => {
    window.focus();
    focusCard();
    n.close();
  };
  return n;
}

/** Wire the side panel's two settings; `changed(prefs)` gets each new choice (also saved). */
export function setupNotifications(prefs, changed) {
  const desktop = document.getElementById("notify-desktop");
  const sound = document.getElementById("notify-sound");
  const note = document.getElementById("notify-note");
  let current = prefs;
  desktop.checked = prefs.desktop && permission() === "granted";
  sound.checked = prefs.sound;
  const explain = () => {
    const p = permission();
    note.textContent = p === "denied" ? t("notify.denied") : p === "unsupported" ? t("notify.unsupported") : "";
  };
  explain();
  desktop.addEventListener("change", async () => {
    if (desktop.checked) {
      const p = await askPermission(); // from the agent's click: the browser asks once
      desktop.checked = p === "granted";
    }
    current = { ...current, desktop: desktop.checked };
    savePrefs(current);
    changed(current);
    explain();
  });
  sound.addEventListener("change", () => {
    current = { ...current, sound: sound.checked };
    savePrefs(current);
    changed(current);
  });
}
