// The `table` view: a list of records as rows, one column per field (a single record becomes a row).

import { isPlainObject, renderList } from "./values.js";

export function render(section, columns) {
  const d = section.data;
  return renderList(Array.isArray(d) ? d : isPlainObject(d) ? [d] : [], columns);
}

export function wide(section) {
  return Array.isArray(section.data) ? section.data.length > 0 : isPlainObject(section.data);
}
