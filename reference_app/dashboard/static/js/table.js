// A sortable, paginated data table.
//
// Column headers are buttons (keyboard-usable) inside <th aria-sort>, so a screen reader
// announces the current order; the pager's buttons say which page they lead to. Sorting
// and paging run over the rows given, which the views load whole from the API's
// cursor-paginated lists (bounded: see api.getAll), so an order covers every row, not
// only the visible page.

import { h, replace } from "./dom.js";

/**
 * @param {object} options
 * @param {string} options.caption   table caption (also its accessible name)
 * @param {string} options.testid    data-testid of the table
 * @param {Array<{key: string, label: string, value: (row) => any, render?: (row) => any,
 *         numeric?: boolean}>} options.columns
 * @param {Array<object>} options.rows
 * @param {(row) => string} options.rowKey  stable key of a row (data-key attribute)
 * @param {number} [options.pageSize]
 * @param {string} [options.sortKey]  initial sort column
 * @param {"ascending"|"descending"} [options.direction]
 * @param {string} [options.empty]   text shown when there are no rows
 * @param {Array<{key: string, label: any, cells: Object<string, any>}>} [options.footer]
 *        rows of the table's foot, outside sorting and paging (what no row can claim,
 *        the overview's totals): `label` heads the row, `cells` holds a column's content
 *        by its key ("—" where absent)
 */
export function sortableTable(options) {
  const { caption, testid, columns, rows, rowKey } = options;
  const pageSize = options.pageSize ?? 10;
  let sortKey = options.sortKey ?? columns[0].key;
  let direction = options.direction ?? "ascending";
  let page = 0;

  const container = h("div", { class: "table-block", "data-testid": `${testid}-block` });

  function sorted() {
    const column = columns.find((c) => c.key === sortKey);
    const factor = direction === "ascending" ? 1 : -1;
    return [...rows].sort((a, b) => {
      const x = column.value(a);
      const y = column.value(b);
      if (x === y) return 0;
      if (x === null || x === undefined) return 1; // blanks (e.g. ROAS "—") last
      if (y === null || y === undefined) return -1;
      if (typeof x === "number" && typeof y === "number") return (x - y) * factor;
      return String(x).localeCompare(String(y)) * factor;
    });
  }

  function header(column) {
    const active = column.key === sortKey;
    const next = active && direction === "ascending" ? "descending" : "ascending";
    return h(
      "th",
      {
        scope: "col",
        class: column.numeric ? "numeric" : null,
        "aria-sort": active ? direction : "none",
      },
      h(
        "button",
        {
          type: "button",
          class: "sort",
          "data-sort": column.key,
          onclick: () => {
            direction = active ? next : column.numeric ? "descending" : "ascending";
            sortKey = column.key;
            page = 0;
            render();
            container.querySelector(`button[data-sort="${column.key}"]`)?.focus();
          },
        },
        column.label,
        h("span", { class: "sort-mark", "aria-hidden": "true" }, active ? (direction === "ascending" ? "▲" : "▼") : "↕"),
      ),
    );
  }

  function render() {
    const all = sorted();
    const pages = Math.max(1, Math.ceil(all.length / pageSize));
    page = Math.min(page, pages - 1);
    const visible = all.slice(page * pageSize, (page + 1) * pageSize);
    const body = visible.length
      ? visible.map((row) =>
          h(
            "tr",
            { "data-key": rowKey(row) },
            columns.map((column, index) => {
              const content = column.render ? column.render(row) : column.value(row);
              const cell = index === 0 ? "th" : "td";
              return h(cell, { class: column.numeric ? "numeric" : null, scope: index === 0 ? "row" : null, "data-column": column.key }, content ?? "—");
            }),
          ),
        )
      : [h("tr", {}, h("td", { colspan: columns.length, class: "empty" }, options.empty ?? "Nothing to show."))];
    const foot = (options.footer ?? []).filter(Boolean).map((row) =>
      h(
        "tr",
        { "data-key": row.key },
        columns.map((column, index) =>
          index === 0
            ? h("th", { scope: "row", "data-column": column.key }, row.label)
            : h("td", { class: column.numeric ? "numeric" : null, "data-column": column.key }, row.cells[column.key] ?? "—"),
        ),
      ),
    );
    const table = h(
      "table",
      { "data-testid": testid },
      h("caption", {}, caption),
      h("thead", {}, h("tr", {}, columns.map(header))),
      h("tbody", {}, body),
      foot.length ? h("tfoot", {}, foot) : null,
    );
    const pager = h(
      "nav",
      { class: "pager", "aria-label": `${caption} pages` },
      h(
        "button",
        {
          type: "button",
          class: "button secondary",
          "data-testid": `${testid}-previous`,
          disabled: page === 0,
          "aria-label": `Previous page of ${caption}`,
          onclick: () => {
            page -= 1;
            render();
          },
        },
        "Previous",
      ),
      h("span", { "data-testid": `${testid}-page`, "aria-live": "polite" }, `Page ${page + 1} of ${pages} · ${all.length} rows`),
      h(
        "button",
        {
          type: "button",
          class: "button secondary",
          "data-testid": `${testid}-next`,
          disabled: page >= pages - 1,
          "aria-label": `Next page of ${caption}`,
          onclick: () => {
            page += 1;
            render();
          },
        },
        "Next",
      ),
    );
    replace(container, h("div", { class: "table-scroll", tabindex: "0", role: "region", "aria-label": caption }, table), pager);
  }

  render();
  return container;
}
