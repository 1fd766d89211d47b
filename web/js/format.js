// Formatting of section data for people: key names, money, dates, numbers, yes/no.

const MONEY_KEYS = new Set(["balance", "overdue", "limit", "available", "total", "unit_price", "price",
  "amount", "credit_limit", "amount_due", "subtotal"]);
const CURRENCY_KEYS = ["currency", "currency_code"];
const ISO_DATE = /^\d{4}-\d{2}-\d{2}$/;
const ISO_DATETIME = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$/;
const WORDS = { id: "ID", qty: "Qty", sku: "SKU", vat: "VAT", url: "URL", iban: "IBAN", e164: "E.164" };

/** "last_payment" -> "Last payment", "holdReason" -> "Hold reason", "customer_id" -> "Customer ID". */
export function humanise(key) {
  const words = String(key)
    .replace(/([a-z0-9])([A-Z])/g, "$1 $2")
    .split(/[_\-\s.]+/)
    .filter(Boolean)
    .map((w) => w.toLowerCase());
  if (!words.length) return String(key);
  const out = words.map((w) => WORDS[w] || w);
  out[0] = out[0].charAt(0).toUpperCase() + out[0].slice(1);
  return out.join(" ");
}

/** True when values under this key are amounts of money. */
export function isMoneyKey(key) {
  return MONEY_KEYS.has(String(key).toLowerCase());
}

/** The currency code found in an object (its "currency" or "currency_code"), or null. */
export function currencyOf(obj) {
  if (!obj || typeof obj !== "object") return null;
  for (const k of CURRENCY_KEYS) {
    const v = obj[k];
    if (typeof v === "string" && /^[A-Za-z]{3}$/.test(v.trim())) return v.trim().toUpperCase();
  }
  return null;
}

/** The currency keys present in an object (hidden once their currency is shown with the amounts). */
export function currencyKeys(obj) {
  return CURRENCY_KEYS.filter((k) => obj && typeof obj[k] === "string");
}

function toNumber(value) {
  if (typeof value === "number" && Number.isFinite(value)) return value;
  if (typeof value === "string" && /^-?\d+(\.\d+)?$/.test(value.trim())) return Number(value);
  return null;
}

const formatters = new Map();
function numberFormat(options) {
  const key = JSON.stringify(options);
  if (!formatters.has(key)) formatters.set(key, new Intl.NumberFormat(undefined, options));
  return formatters.get(key);
}

/** An amount with its currency when known ("$1,240.50"), else with two decimals; null if not a number. */
export function formatMoney(value, currency) {
  const n = toNumber(value);
  if (n === null) return null;
  if (currency) {
    try {
      return numberFormat({ style: "currency", currency }).format(n);
    } catch {
      // an unknown currency code: show the number and the code as they came
      return `${numberFormat({ minimumFractionDigits: 2, maximumFractionDigits: 2 }).format(n)} ${currency}`;
    }
  }
  return numberFormat({ minimumFractionDigits: 2, maximumFractionDigits: 2 }).format(n);
}

/** A plain number in the agent's locale. */
export function formatNumber(n) {
  return numberFormat({ maximumFractionDigits: 2 }).format(n);
}

const dateOnly = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeZone: "UTC" });
const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const dateTimeUtc = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short", timeZone: "UTC" });

/** An ISO date or date-time string in the agent's locale; null when the string is not one. */
export function formatDate(value) {
  if (typeof value !== "string") return null;
  const s = value.trim();
  if (ISO_DATE.test(s)) {
    const [y, m, d] = s.split("-").map(Number);
    const t = Date.UTC(y, m - 1, d);
    return Number.isNaN(t) ? null : dateOnly.format(t);
  }
  if (ISO_DATETIME.test(s)) {
    const zoned = /(Z|[+-]\d{2}:?\d{2})$/.test(s);
    // without a zone the time is the source's wall clock: show it as it is, not shifted
    const t = Date.parse(zoned ? s : `${s.replace(" ", "T")}Z`);
    if (Number.isNaN(t)) return null;
    return (zoned ? dateTime : dateTimeUtc).format(t);
  }
  return null;
}

/** A clock time ("10:42") for an ISO timestamp, or "" when there is none. */
export function formatClock(iso) {
  if (!iso) return "";
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return "";
  return new Intl.DateTimeFormat(undefined, { timeStyle: "short" }).format(t);
}

/** A duration in seconds for people: "12s", "4 min", "2 h". */
export function formatAge(seconds) {
  const s = Number(seconds);
  if (!Number.isFinite(s) || s < 0) return "";
  if (s < 90) return `${Math.round(s)}s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  return `${Math.round(s / 3600)} h`;
}

/** A latency in milliseconds: "38 ms", "1.2 s". */
export function formatLatency(ms) {
  const n = Number(ms);
  if (ms === null || ms === undefined || !Number.isFinite(n)) return "";
  if (n < 1000) return `${Math.round(n)} ms`;
  return `${(n / 1000).toFixed(1)} s`;
}
