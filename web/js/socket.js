// A WebSocket that reconnects by itself: exponential backoff from 0.5 s doubling to 10 s, with jitter.
//
//   const sock = new ReconnectingSocket(url, { onMessage, onState, onRefused });
//   sock.start();  sock.send({type: "ack", call_id});  sock.stop();
//
// States reported to onState: "connecting" (first try), "connected", "reconnecting" (with the delay
// in ms before the next try), "stopped". A close with code 1008 (policy violation: not logged in, or
// origin refused) or 4401 (the session ended: logout, expiry, revoked) is not retried: onRefused(reason)
// decides what to do.

const BASE_DELAY_MS = 500;
const MAX_DELAY_MS = 10_000;
const POLICY_VIOLATION = 1008;
const SESSION_ENDED = 4401;

/** The delay before retry number `attempt` (0-based): 0.5 s, 1 s, 2 s, ... up to 10 s, each jittered by ±20 %. */
export function backoffDelay(attempt, random = Math.random) {
  const nominal = BASE_DELAY_MS * 2 ** Math.min(attempt, 16);
  return Math.round(Math.min(MAX_DELAY_MS, nominal * (0.8 + 0.4 * random())));
}

export class ReconnectingSocket {
  constructor(url, { onMessage = () => {}, onState = () => {}, onRefused = () => {} } = {}) {
    this.url = url;
    this.onMessage = onMessage;
    this.onState = onState;
    this.onRefused = onRefused;
    this.ws = null;
    this.attempt = 0;
    this.timer = null;
    this.stopped = true;
    this.everConnected = false;
    this._online = () => this.retryNow();
  }

  /** Connect (and keep reconnecting until stop()). */
  start() {
    if (!this.stopped) return;
    this.stopped = false;
    window.addEventListener("online", this._online);
    this._connect();
  }

  /** Close for good: no more reconnects. */
  stop() {
    this.stopped = true;
    window.removeEventListener("online", this._online);
    clearTimeout(this.timer);
    this.timer = null;
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.close(1000, "bye");
    }
    this.onState("stopped");
  }

  /** Skip the wait and try again now (when the browser says it is back online). */
  retryNow() {
    if (this.stopped || !this.timer) return;
    clearTimeout(this.timer);
    this.timer = null;
    this._connect();
  }

  /** Send a JSON message; false when the socket is not open (nothing is queued). */
  send(message) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(message));
    return true;
  }

  get connected() {
    return Boolean(this.ws && this.ws.readyState === WebSocket.OPEN);
  }

  _connect() {
    this.onState(this.everConnected ? "reconnecting" : "connecting", 0);
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch (err) {
      console.error("screenpop: cannot open the socket", err);
      this._schedule();
      return;
    }
    this.ws = ws;
    ws.addEventListener("open", () => {
      if (this.ws !== ws) return;
      this.everConnected = true;
      this.onState("connected");
    });
    ws.addEventListener("message", (event) => {
      if (this.ws !== ws) return;
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        console.warn("screenpop: ignoring a message that is not JSON");
        return;
      }
      if (!message || typeof message !== "object") return;
      if (message.type === "snapshot") this.attempt = 0; // a healthy connection: start the backoff over
      try {
        this.onMessage(message);
      } catch (err) {
        console.error("screenpop: could not handle a message", message.type, err);
      }
    });
    ws.addEventListener("close", (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.stopped) return;
      if (event.code === POLICY_VIOLATION || event.code === SESSION_ENDED) {
        this.stopped = true;
        window.removeEventListener("online", this._online);
        this.onState("stopped");
        this.onRefused(event.reason || "refused");
        return;
      }
      this._schedule();
    });
    // "error" is always followed by "close": the retry is scheduled there.
  }

  _schedule() {
    const delay = backoffDelay(this.attempt);
    this.attempt += 1;
    this.onState("reconnecting", delay);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      if (!this.stopped) this._connect();
    }, delay);
  }
}
