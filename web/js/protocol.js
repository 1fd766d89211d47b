// How a card changes with each server message: the mirror of screenpop/protocol.py (`apply`,
// `apply_section`). tests/fixtures/protocol/*.json pin both sides to the same cards.

export const CUSTOMER_SECTION = "customer";

/**
 * Put a `card.section` message's section on the card, in place of the one of the same name (at the end
 * if there is none; a section without a title keeps the one it replaces). The customer section's data
 * (an object) also sets the card's `customer` and `candidates`. Changes the card in place and returns it.
 */
export function applySection(card, message) {
  const { type, call_id: callId, ...section } = message; // eslint-disable-line no-unused-vars
  const sections = Array.isArray(card.sections) ? card.sections : [];
  card.sections = sections;
  const i = sections.findIndex((s) => s.name === section.name);
  if (i >= 0) {
    if (!section.title) section.title = sections[i].title ?? "";
    sections[i] = section;
  } else {
    sections.push(section);
  }
  const data = section.data;
  if (section.name === CUSTOMER_SECTION && data !== null && typeof data === "object" && !Array.isArray(data)) {
    card.customer = data.customer ?? null;
    card.candidates = Array.isArray(data.candidates) ? data.candidates : [];
  }
  return card;
}

/**
 * The card after one message about its call: `call.ringing` gives the card itself (null before it);
 * `call.withdrawn` changes nothing on the card (it takes the card away from the agent).
 */
export function applyMessage(card, message) {
  if (message.type === "call.ringing") return message.call ?? null;
  if (!card) return null;
  if (message.type === "card.section" && typeof message.name === "string") applySection(card, message);
  else if (message.type === "call.answered") {
    card.state = "answered";
    card.answered_by = message.agent ?? null;
  } else if (message.type === "call.ended") card.state = "ended";
  else if (message.type === "wrapup.state") {
    const { type, call_id: callId, ...wrapup } = message; // eslint-disable-line no-unused-vars
    card.wrapup = wrapup;
  }
  return card;
}

// -- what the agent sends (screenpop/protocol.py: read_request) ---------------------------------------

/** `wrapup`: save the wrap-up of a call. `followUp` is an ISO date ("2026-12-01") or empty. */
export function wrapupRequest(callId, { notes = "", disposition = "", followUp = "" } = {}) {
  return { type: "wrapup", call_id: callId, notes: String(notes), disposition: String(disposition),
    follow_up: followUp ? String(followUp) : null };
}

/** `wrapup.draft`: the notes typed so far (a transfer carries them to the next agent). */
export function draftRequest(callId, notes = "") {
  return { type: "wrapup.draft", call_id: callId, notes: String(notes) };
}

/** `select`: the agent's choice of customer for a call (among several, or found by a search). */
export function selectRequest(callId, customerId) {
  return { type: "select", call_id: callId, customer_id: String(customerId) };
}
