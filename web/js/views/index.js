// One renderer per view, chosen by `section.view.kind` (screenpop.models.View). A section without a view
// is shown by its data's shape: a list of records as `table`, anything else as `fields`. A view module
// exports render(section, columns, entry, ctx) for the section's data, and may export wide(section) (the
// panel spans the card), emptyText (shown for `empty`), and state(entry) (what else re-renders it).
// To add a view: a module here that exports render(), and its name in VIEWS (the server accepts a view
// kind in a connector's config when web/js/views/<kind>.js exports render: screenpop.config.view_kinds).

import * as customer from "./customer.js";
import * as fields from "./fields.js";
import * as offers from "./offers.js";
import * as table from "./table.js";
import { t } from "../i18n.js";
import { columnsOf, isPlainObject } from "./values.js";

const VIEWS = { customer, fields, table, offers };

/** The view module for a section. */
export function viewOf(section) {
  const kind = section.view && section.view.kind;
  if (kind && Object.hasOwn(VIEWS, kind)) return VIEWS[kind];
  const d = section.data;
  return Array.isArray(d) && d.length > 0 && d.every(isPlainObject) ? table : fields;
}

export function renderBody(section, entry, ctx) {
  return viewOf(section).render(section, columnsOf(section), entry, ctx);
}

export function isWide(section) {
  const view = viewOf(section);
  return view.wide ? view.wide(section) : false;
}

export function emptyText(section) {
  return t(viewOf(section).emptyText || "value.no_data");
}

export function viewState(section, entry) {
  const view = viewOf(section);
  return view.state ? view.state(entry) : [];
}
