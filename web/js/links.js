// Links to other systems ("Open in CRM"): URL templates from the config, filled with a record's values.
// Every value is percent-encoded; only http: and https: URLs come out (anything else gives null), and the
// result is set as an attribute of an <a> built by dom.js (never markup).

/** The template with each {key} replaced by the encoded value from `values`; null when a value is missing
 *  or the result is not an http(s) URL. */
export function fillLink(template, values) {
  if (typeof template !== "string") return null;
  let missing = false;
  const url = template.replace(/\{(\w+)\}/g, (m, key) => {
    const v = values ? values[key] : undefined;
    if (v === null || v === undefined || v === "") {
      missing = true;
      return "";
    }
    return encodeURIComponent(String(v));
  });
  if (missing) return null;
  try {
    const parsed = new URL(url);
    return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
  } catch {
    return null;
  }
}
