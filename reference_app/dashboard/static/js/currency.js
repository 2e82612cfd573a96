// The "Currency" page: the currency the seller's figures are reported in, and the seller's
// own exchange rates with their audit (issue 16 item 1).
//
// Rates of the installed source (the ECB's reference rates) load on their own; a seller
// enters a rate only for a currency the source does not publish, or to use their own
// bank's. A manual rate holds for one day and one pair, wins over the source's for this
// seller's figures, and every change is kept (GET /fx/rates/changes). Saving or removing
// a rate recomputes that day; a new reporting currency recomputes the whole history, so
// it is confirmed first.
//
// Everything shown is what the API answered. Rates stay the decimal strings the API sent
// (trailing zeros dropped), never parsed into floats; the rate typed is sent as typed, and
// the API says what is wrong with it (a 422's field problems appear at their field).

import { ApiError, SessionEnded, get, request } from "./api.js";
import { h, replace } from "./dom.js";
import { day } from "./format.js";
import { rangeForm } from "./views.js";

const CURRENCY_CODE = /^[A-Z]{3}$/;
const CHANGES_SHOWN = 100;

/** A rate as the API sent it ("1.0850000000"), without the trailing zeros ("1.085"). */
function plainRate(value) {
  if (value === null || value === undefined) return "—";
  const text = String(value);
  return text.includes(".") ? text.replace(/0+$/, "").replace(/\.$/, "") : text;
}

function pairText(base, quote, rate) {
  return `1 ${base} = ${plainRate(rate)} ${quote}`;
}

function say(element, message) {
  element.textContent = message;
  element.hidden = !message;
}

/** Who changed a rate, from the audit's `changed_by` ("user:<id>" or "api"). */
function author(changedBy, context) {
  if (changedBy === `user:${context.user.id}`) return `You (${context.user.email})`;
  if (changedBy.startsWith("user:")) return "Another user of your account";
  if (changedBy === "api") return "An API client";
  return changedBy;
}

/**
 * A text field with its label, an optional hint, and a place for its error: the error is
 * tied to the input (aria-describedby, aria-invalid) so it is read with it.
 */
function field(id, label, attributes, hint) {
  const hintId = hint ? `${id}-hint` : null;
  const errorId = `${id}-error`;
  const input = h("input", { id, autocomplete: "off", ...attributes, "aria-describedby": [hintId, errorId].filter(Boolean).join(" ") });
  const error = h("p", { class: "field-error", id: errorId, "data-testid": errorId, hidden: true });
  const row = h("div", { class: "field" }, h("label", { for: id }, label), input, hint ? h("p", { class: "hint", id: hintId }, hint) : null, error);
  return {
    input,
    row,
    label,
    fail(message) {
      say(error, message);
      if (message) input.setAttribute("aria-invalid", "true");
      else input.removeAttribute("aria-invalid");
    },
  };
}

/**
 * Put what the API refused next to the fields it names (a 422's `details`, located at
 * `["body", <field>]`); what names no field goes to `problem`. Answers whether a field
 * was named, and focuses the first such field.
 */
function showRefusal(error, fields, problem, prefix) {
  for (const f of Object.values(fields)) f.fail("");
  if (error instanceof SessionEnded) return; // the shell shows the login page
  const details = error instanceof ApiError ? error.details : [];
  const unplaced = [];
  const named = [];
  for (const detail of details) {
    const name = Array.isArray(detail.location) ? detail.location[detail.location.length - 1] : null;
    const target = fields[name];
    if (target) {
      target.fail(detail.message);
      if (!named.includes(target)) named.push(target);
    } else {
      unplaced.push(detail.message);
    }
  }
  const message = error instanceof ApiError ? error.message : `Something went wrong: ${error.message}`;
  const parts = named.length ? [`check ${named.map((f) => f.label).join(", ")}`, ...unplaced] : [message, ...unplaced];
  say(problem, `${prefix}: ${parts.join("; ")}`);
  (named[0]?.input ?? problem).focus();
}

function ratesTable(rates, range, onRemove) {
  const rows = rates.map((r) => {
    const label = `${r.base_currency}/${r.quote_currency} on ${day(r.day)}`;
    return h(
      "tr",
      { "data-key": `${r.day}/${r.base_currency}/${r.quote_currency}` },
      h("th", { scope: "row" }, day(r.day)),
      h("td", { "data-column": "pair" }, `${r.base_currency}/${r.quote_currency}`),
      h("td", { class: "numeric", "data-column": "rate" }, pairText(r.base_currency, r.quote_currency, r.rate)),
      h("td", { "data-column": "note" }, r.note ?? "—"),
      h(
        "td",
        {},
        h("button", { type: "button", class: "button secondary", "aria-label": `Remove the rate ${label}`, "data-testid": "remove-rate", onclick: (event) => onRemove(r, event.currentTarget) }, "Remove"),
      ),
    );
  });
  return h(
    "div",
    { class: "table-scroll", tabindex: "0", role: "region", "aria-labelledby": "rates-heading" },
    h(
      "table",
      { "data-testid": "rates-table" },
      h("caption", {}, `Your rates from ${day(range.since)} to ${day(range.until)}, by day`),
      h("thead", {}, h("tr", {}, ["Day", "Pair", "Rate", "Note", "Action"].map((label, i) => h("th", { scope: "col", class: i === 2 ? "numeric" : null }, label)))),
      h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 5, class: "empty", "data-testid": "no-rates" }, "No rates of your own in this range: the reference rates apply."))),
    ),
  );
}

function changesTable(changes, context) {
  const rows = changes.map((c, index) =>
    h(
      "tr",
      { "data-key": String(index), "data-kind": c.new_rate === null ? "removed" : c.old_rate === null ? "set" : "replaced" },
      h("th", { scope: "row" }, day(c.day)),
      h("td", { "data-column": "pair" }, `${c.base_currency}/${c.quote_currency}`),
      h("td", { class: "numeric", "data-column": "old" }, c.old_rate === null ? "None" : plainRate(c.old_rate)),
      h("td", { class: "numeric", "data-column": "new" }, c.new_rate === null ? "Removed" : plainRate(c.new_rate)),
      h("td", { "data-column": "note" }, c.note ?? "—"),
      h("td", { "data-column": "by" }, author(c.changed_by, context)),
    ),
  );
  return h(
    "div",
    { class: "table-scroll", tabindex: "0", role: "region", "aria-labelledby": "changes-heading" },
    h(
      "table",
      { "data-testid": "rate-changes-table" },
      h("caption", {}, `Every change to your rates, newest first (the latest ${CHANGES_SHOWN})`),
      h("thead", {}, h("tr", {}, ["Day", "Pair", "Before", "After", "Note", "By"].map((label, i) => h("th", { scope: "col", class: i === 2 || i === 3 ? "numeric" : null }, label)))),
      h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 6, class: "empty", "data-testid": "no-rate-changes" }, "You have not changed a rate yet."))),
    ),
  );
}

/** The reporting currency and the form that changes it, after a confirmation. */
function reportingSection(context, notify) {
  const shown = h("strong", { "data-testid": "reporting-currency" }, context.seller.reporting_currency);
  const code = field("reporting-currency-input", "New reporting currency", { type: "text", name: "reporting_currency", maxlength: 3, spellcheck: "false", autocapitalize: "characters", required: true }, "Three letters (ISO 4217), like EUR.");
  const problem = h("p", { class: "inline-alert", role: "alert", tabindex: "-1", "data-testid": "reporting-currency-problem", hidden: true });
  const submit = h("button", { type: "submit", class: "button" }, "Change reporting currency…");
  const form = h(
    "form",
    {
      class: "currency-form",
      "data-testid": "reporting-currency-form",
      novalidate: true,
      onsubmit: async (event) => {
        event.preventDefault();
        const current = context.seller.reporting_currency;
        const wanted = code.input.value.trim().toUpperCase();
        say(problem, "");
        if (!CURRENCY_CODE.test(wanted)) {
          code.fail("Enter the three-letter code of a currency, like EUR.");
          code.input.focus();
          return;
        }
        if (wanted === current) {
          code.fail(`Your figures are already reported in ${current}.`);
          code.input.focus();
          return;
        }
        code.fail("");
        const question = `Report your figures in ${wanted} instead of ${current}? The whole history is recomputed in ${wanted}, each day at its own rate; until that is done, the overview shows those days as being recomputed.`;
        if (!window.confirm(question)) return;
        submit.disabled = true;
        try {
          const answer = await request("/seller/reporting-currency", { method: "PUT", body: { reporting_currency: wanted } });
          // The shell's copy of /auth/me: the other pages name the currency from it.
          context.seller.reporting_currency = answer.reporting_currency;
          shown.textContent = answer.reporting_currency;
          code.input.value = "";
          const n = answer.days_to_recompute;
          notify(
            n
              ? `Your figures are now reported in ${answer.reporting_currency}. ${n} day${n === 1 ? "" : "s"} of history ${n === 1 ? "is" : "are"} being recomputed; until that is done, ${n === 1 ? "that day" : "those days"} (marked "Recomputing" on the overview) still hold${n === 1 ? "s" : ""} ${current} amounts.`
              : `Your figures are now reported in ${answer.reporting_currency}.`,
          );
        } catch (error) {
          showRefusal(error, { reporting_currency: code }, problem, "The reporting currency was not changed");
        } finally {
          submit.disabled = false;
        }
      },
    },
    code.row,
    h("div", { class: "actions" }, submit),
  );
  return h(
    "section",
    { class: "panel", "aria-labelledby": "reporting-heading", "data-testid": "reporting-section" },
    h("h2", { id: "reporting-heading" }, "Reporting currency"),
    h("p", {}, "Your figures are reported in ", shown, ": every amount is converted at its own day's rate."),
    problem,
    form,
  );
}

/** The form that sets (or replaces) a rate of one day and pair. */
function rateForm(context, range, saved) {
  const fields = {
    day: field("rate-day", "Day", { type: "date", name: "day", value: range.until, required: true }),
    base_currency: field("rate-base", "Currency", { type: "text", name: "base_currency", maxlength: 3, spellcheck: "false", autocapitalize: "characters", required: true }, "The currency you convert from, like CZK."),
    quote_currency: field("rate-quote", "Into", { type: "text", name: "quote_currency", maxlength: 3, spellcheck: "false", autocapitalize: "characters", required: true, value: context.seller.reporting_currency }, "Usually your reporting currency."),
    rate: field("rate-value", "Rate", { type: "text", name: "rate", inputmode: "decimal", required: true }, "How much one unit of the first currency buys, like 0.0412."),
    note: field("rate-note", "Note (optional, kept in the changes below)", { type: "text", name: "note", maxlength: 500 }),
  };
  const problem = h("p", { class: "inline-alert", role: "alert", tabindex: "-1", "data-testid": "rate-problem", hidden: true });
  const submit = h("button", { type: "submit", class: "button" }, "Save rate");
  const form = h(
    "form",
    {
      class: "rate-form",
      "data-testid": "rate-form",
      novalidate: true,
      onsubmit: async (event) => {
        event.preventDefault();
        say(problem, "");
        const body = {
          day: fields.day.input.value,
          base_currency: fields.base_currency.input.value.trim().toUpperCase(),
          quote_currency: fields.quote_currency.input.value.trim().toUpperCase(),
          rate: fields.rate.input.value.trim().replace(",", "."),
          note: fields.note.input.value.trim() || null,
        };
        fields.base_currency.input.value = body.base_currency;
        fields.quote_currency.input.value = body.quote_currency;
        let missing = null;
        for (const [name, f] of Object.entries(fields)) {
          const empty = name !== "note" && !body[name];
          f.fail(empty ? "Fill this in." : "");
          if (empty) missing ??= f.input;
        }
        if (missing) {
          missing.focus();
          return;
        }
        submit.disabled = true;
        try {
          const rate = await request("/fx/rates", { method: "PUT", body });
          fields.rate.input.value = "";
          fields.note.input.value = "";
          await saved(rate);
        } catch (error) {
          showRefusal(error, fields, problem, "The rate was not saved");
        } finally {
          submit.disabled = false;
        }
      },
    },
    h("div", { class: "field-row" }, fields.day.row, fields.base_currency.row, fields.quote_currency.row, fields.rate.row),
    fields.note.row,
    problem,
    h("div", { class: "actions" }, submit),
  );
  return form;
}

/** The Currency page; `range` is the days whose manual rates are listed. */
export async function currencyView(context, range) {
  let [rates, changes] = await Promise.all([get("/fx/rates", range), get("/fx/rates/changes", { limit: CHANGES_SHOWN })]);
  const notice = h("p", { class: "notice", role: "status", "data-testid": "currency-notice", hidden: true });
  const listProblem = h("p", { class: "inline-alert", role: "alert", tabindex: "-1", "data-testid": "rates-problem", hidden: true });
  const ratesHolder = h("div", { "data-testid": "rates" });
  const changesHolder = h("div", { "data-testid": "rate-changes" });

  function draw() {
    replace(ratesHolder, ratesTable(rates, range, remove));
    replace(changesHolder, changesTable(changes, context));
  }

  async function refresh() {
    try {
      [rates, changes] = await Promise.all([get("/fx/rates", range), get("/fx/rates/changes", { limit: CHANGES_SHOWN })]);
    } catch (error) {
      if (!(error instanceof SessionEnded)) say(listProblem, `Your rates could not be read again: ${error.message}. Reload the page to see them.`);
      return;
    }
    if (ratesHolder.isConnected) draw();
  }

  async function remove(rate, button) {
    const label = `${rate.base_currency}/${rate.quote_currency} rate of ${day(rate.day)} (${pairText(rate.base_currency, rate.quote_currency, rate.rate)})`;
    if (!window.confirm(`Remove your ${label}? That day is recomputed with the reference rate.`)) return;
    button.disabled = true;
    say(listProblem, "");
    say(notice, "");
    const path = `/fx/rates/${rate.day}/${encodeURIComponent(rate.base_currency)}/${encodeURIComponent(rate.quote_currency)}`;
    try {
      await request(path, { method: "DELETE" });
      say(notice, `Removed your ${label}; that day is being recomputed.`);
    } catch (error) {
      if (error instanceof SessionEnded) return;
      if (!(error instanceof ApiError && error.status === 404)) {
        button.disabled = false;
        say(listProblem, `The rate was not removed: ${error.message}`);
        listProblem.focus();
        return;
      }
      say(notice, `Your ${label} had already been removed.`);
    }
    await refresh();
  }

  const saved = async (rate) => {
    const inRange = rate.day >= range.since && rate.day <= range.until;
    say(notice, `Saved: on ${day(rate.day)}, ${pairText(rate.base_currency, rate.quote_currency, rate.rate)}. That day is being recomputed.${inRange ? "" : " It is outside the days listed; change the range to see it."}`);
    await refresh();
  };

  draw();
  return [
    h("h1", {}, "Currency"),
    notice,
    reportingSection(context, (message) => say(notice, message)),
    h(
      "section",
      { class: "panel", "aria-labelledby": "rates-heading", "data-testid": "rates-section" },
      h("h2", { id: "rates-heading" }, "Your exchange rates"),
      h(
        "p",
        { class: "note" },
        "Reference rates load on their own, every hour. Enter a rate only for a currency they do not cover, or to use your own bank's: it holds for that day and wins over the reference rate.",
      ),
      rangeForm("currency", range),
      listProblem,
      ratesHolder,
      h("h3", { id: "rate-form-heading" }, "Add or replace a rate"),
      rateForm(context, range, saved),
    ),
    h(
      "section",
      { class: "panel", "aria-labelledby": "changes-heading", "data-testid": "changes-section" },
      h("h2", { id: "changes-heading" }, "Changes to your rates"),
      changesHolder,
    ),
  ];
}
