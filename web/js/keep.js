// The console's calls kept across a reload of the tab: the cards on screen (an ended call waiting for the
// agent's wrap-up among them) and the recent list. They live in sessionStorage, which belongs to this tab
// alone and ends with it; they are kept per agent and forgotten on logout and whenever the session is gone,
// so no customer's card outlives the agent's session in the browser. After a reload the socket's snapshot
// is the truth for the active calls (the console reconciles, as after any reconnect).

const STORE = "screenpop.calls";

const slim = (e) => ({ card: e.card, outcome: e.outcome, reason: e.reason });
const valid = (k) => Boolean(k && k.card && typeof k.card.call_id === "string" && k.card.call_id);

/** Keep `entries` (on screen) and `recent` for `agentId`; a full or unavailable storage keeps nothing. */
export function keepCalls(agentId, entries, recent) {
  try {
    sessionStorage.setItem(STORE, JSON.stringify({ agent: agentId, entries: entries.map(slim), recent: recent.map(slim) }));
  } catch {
    // nothing kept: a reload then shows the active calls from the snapshot only
  }
}

/** What was kept for `agentId` ({entries, recent}, each {card, outcome, reason}); another agent's is dropped. */
export function keptCalls(agentId) {
  let kept = null;
  try {
    kept = JSON.parse(sessionStorage.getItem(STORE) || "null");
  } catch {
    kept = null;
  }
  if (!kept || kept.agent !== agentId || !Array.isArray(kept.entries) || !Array.isArray(kept.recent)) {
    forgetCalls();
    return { entries: [], recent: [] };
  }
  return { entries: kept.entries.filter(valid), recent: kept.recent.filter(valid) };
}

/** Forget every kept call (logout, session gone). */
export function forgetCalls() {
  try {
    sessionStorage.removeItem(STORE);
  } catch {
    // no storage: nothing was kept
  }
}
