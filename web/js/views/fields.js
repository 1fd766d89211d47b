// The `fields` view: one record as labelled values (a list of records falls back to a table).

import { isPlainObject, renderData } from "./values.js";

export function render(section, columns) {
  return renderData(section.data, columns);
}

/** A record that holds a table of records needs the card's full width. */
export function wide(section) {
  const d = section.data;
  if (Array.isArray(d)) return d.length > 0 && d.every(isPlainObject);
  return isPlainObject(d) && Object.values(d).some((v) => Array.isArray(v) && v.length && v.every(isPlainObject));
}
