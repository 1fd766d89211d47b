// The console's languages: one message catalog per language, plain JSON in web/i18n/<lang>.json (no build
// step). English is complete and the fallback; a test fails when another catalog lacks one of its keys.
// The language is the agent's choice (the switch, kept in localStorage), else the first of the browser's
// languages that has a catalog, else English. Words that come from the config (section titles, column
// labels, dispositions) are translated by the config's `console.translations` (`word`).

export const LANGUAGES = { en: "English", sv: "Svenska", fi: "Suomi", el: "Ελληνικά", tl: "Tagalog" };
const STORE = "screenpop.lang";

let lang = "en";
let catalog = {};
let english = {};
let configWords = {};

/** The language to use: the stored choice, else the browser's first language with a catalog, else "en". */
export function pickLanguage(preferred = navigator.languages || [navigator.language]) {
  let stored = null;
  try {
    stored = localStorage.getItem(STORE);
  } catch {
    stored = null;
  }
  if (stored && Object.hasOwn(LANGUAGES, stored)) return stored;
  for (const tag of preferred || []) {
    const base = String(tag).toLowerCase().split("-")[0];
    if (base === "fil") return "tl"; // Filipino
    if (Object.hasOwn(LANGUAGES, base)) return base;
  }
  return "en";
}

async function fetchCatalog(code) {
  const response = await fetch(`/static/i18n/${code}.json`, { credentials: "same-origin" });
  if (!response.ok) throw new Error(`catalog ${code}: HTTP ${response.status}`);
  return response.json();
}

/** Load `code`'s catalog (and English, the fallback); sets <html lang>. */
export async function loadLanguage(code) {
  if (!Object.hasOwn(LANGUAGES, code)) code = "en";
  if (!Object.keys(english).length) english = await fetchCatalog("en");
  catalog = code === "en" ? english : await fetchCatalog(code).catch(() => english);
  lang = code;
  document.documentElement.lang = code;
  return code;
}

/** Remember the agent's choice. */
export function storeLanguage(code) {
  try {
    localStorage.setItem(STORE, code);
  } catch {
    // storage disabled: the choice lasts for this page
  }
}

export function currentLanguage() {
  return lang;
}

/** The message `key`, with {name} placeholders filled from `vars`. */
export function t(key, vars = {}) {
  const text = Object.hasOwn(catalog, key) ? catalog[key] : Object.hasOwn(english, key) ? english[key] : key;
  return String(text).replace(/\{(\w+)\}/g, (m, name) => (Object.hasOwn(vars, name) ? String(vars[name]) : m));
}

/** The config's translations: {lang: {English word: translated}}. */
export function setConfigWords(translations) {
  configWords = translations && typeof translations === "object" ? translations : {};
}

/** A word from the config (a section title, a column label, a disposition) in the agent's language: the
 *  config's translation, else the catalog's for the built-in words (`word.<English>`), else as it is. */
export function word(text) {
  const table = configWords[lang];
  if (typeof text !== "string") return text;
  if (table && Object.hasOwn(table, text)) return table[text];
  if (lang !== "en" && Object.hasOwn(catalog, `word.${text}`)) return catalog[`word.${text}`];
  return text;
}

/** Translate the static page: `data-i18n="key"` sets the text, `data-i18n-attr="attr:key attr:key"` attributes. */
export function applyStatic(root = document) {
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-attr]")) {
    for (const pair of el.dataset.i18nAttr.split(/\s+/).filter(Boolean)) {
      const [attr, key] = pair.split(":");
      el.setAttribute(attr, t(key));
    }
  }
}

/** Fill a <select> with the languages, the current one chosen; `onChange(code)` when the agent switches. */
export function languageSwitch(select, onChange) {
  for (const [code, name] of Object.entries(LANGUAGES)) {
    const option = document.createElement("option");
    option.value = code;
    option.textContent = name;
    option.lang = code;
    select.appendChild(option);
  }
  select.value = lang;
  select.addEventListener("change", () => {
    storeLanguage(select.value);
    onChange(select.value);
  });
}
