// The `table` view: a list of records as rows, one column per field (a single record becomes a row).

import { isPlainObject, renderList } from "./values.js";

export function render(section, columns, entry, ctx) {
  const d = section.data;
  const rowLinks = ctx && ctx.settings && ctx.settings.row_links ? ctx.settings.row_links[section.name] : null;
  return renderList(Array.isArray(d) ? d : isPlainObject(d) ? [d] : [], columns, rowLinks || null);
}

export function wide(section) {
  return Array.isArray(section.data) ? section.data.length > 0 : isPlainObject(section.data);
}
