// One order: its status and totals, its money per currency, its refunds and its history,
// and the seller's Refund action (issue 15 item 4).
//
// Everything shown is what the API answered (GET /orders/{id}: the order with `money` and
// `refunds`; GET /orders/{id}/events: its history); nothing is computed here but
// formatting and turning the typed amount into minor units.
//
// Refunding moves money, so it takes two steps: the form (amount, prefilled with what is
// still refundable, and a reason), then a confirmation naming the amount ("Refund €12.50
// to the buyer?"). Each confirmed attempt sends POST /orders/{id}/refunds with an
// Idempotency-Key of its own; when the answer is lost (network error, server error), the
// retry sends the same key with the same body, which the API answers with the same refund,
// never a second one.

import { ApiError, SessionEnded, get, getAll, request } from "./api.js";
import { h, replace } from "./dom.js";
import { decimalOf, moment, money, parseAmount } from "./format.js";

const ORDER_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

// Where the shopper came from, as checkout kept it from the landing URL (issue 16): the
// source, the campaign by name and the ad network's campaign and ad ids.
function cameFrom(attribution) {
  const a = attribution ?? {};
  const parts = [
    a.utm_source,
    a.utm_campaign,
    a.campaign_ref ? `campaign ${a.campaign_ref}` : null,
    a.ad_ref ? `ad ${a.ad_ref}` : null,
  ].filter(Boolean);
  return parts.length ? parts.join(" · ") : "Not recorded";
}

const REFUND_STATUSES = {
  REQUESTED: ["Requested", "warn"],
  PENDING: ["Pending", "warn"],
  SUCCEEDED: ["Succeeded", "ok"],
  FAILED: ["Failed", "bad"],
};

const EVENT_LABELS = {
  CREATED: "Created",
  STATUS_CHANGED: "Status changed",
  ATTRIBUTED: "Attributed",
  PAYMENT_RECORDED: "Payment recorded",
  TRACKING_UPDATED: "Tracking updated",
  NOTE: "Note",
};

// The ledger's fact kinds (PaymentEventKind values).
const PAYMENT_KINDS = {
  authorized: "Authorized",
  captured: "Captured",
  refunded: "Refunded",
  chargeback: "Charged back",
  chargeback_reversed: "Chargeback won back",
  failed: "Payment failed",
};

/** The money table's rows: what each column of `money` means to a seller. */
const MONEY_COLUMNS = [
  ["captured", "Captured", "captured_minor"],
  ["refunded", "Refunded", "refunded_minor"],
  ["chargeback", "Charged back", "chargeback_minor"],
  ["chargeback-reversed", "Chargebacks won back", "chargeback_reversed_minor"],
  ["net", "Net", "net_minor"],
  ["open-refunds", "In open refunds", "open_refunds_minor"],
  ["refundable", "Refundable", "refundable_minor"],
];

function statusBadge(status) {
  return h("span", { class: `badge status-${status.toLowerCase()}`, "data-testid": "order-status" }, status);
}

function refundBadge(status) {
  const [label, tone] = REFUND_STATUSES[status] ?? [status, "muted"];
  return h("span", { class: `badge ${tone}`, "data-status": status }, label);
}

function moneyTable(order) {
  const rows = order.money.map((m) =>
    h(
      "tr",
      { "data-currency": m.currency },
      h("th", { scope: "row" }, m.currency),
      MONEY_COLUMNS.map(([key, , field]) =>
        h("td", { class: "numeric", "data-column": key, "data-minor": m[field] }, money(m[field], m.currency)),
      ),
    ),
  );
  return h(
    "div",
    { class: "table-scroll", tabindex: "0", role: "region", "aria-labelledby": "money-heading" },
    h(
      "table",
      { "data-testid": "money-table" },
      h("caption", {}, "The order's money, per currency, from the payment ledger"),
      h(
        "thead",
        {},
        h("tr", {}, h("th", { scope: "col" }, "Currency"), MONEY_COLUMNS.map(([, label]) => h("th", { scope: "col", class: "numeric" }, label))),
      ),
      h(
        "tbody",
        {},
        rows.length ? rows : h("tr", {}, h("td", { colspan: MONEY_COLUMNS.length + 1, class: "empty", "data-testid": "no-money" }, "No payment recorded yet.")),
      ),
    ),
  );
}

function refundsTable(order) {
  const rows = order.refunds.map((r) =>
    h(
      "tr",
      { "data-key": r.id, "data-status": r.status },
      h("th", { scope: "row" }, moment(r.created_at)),
      h("td", { class: "numeric", "data-column": "amount", "data-minor": r.amount_minor }, money(r.amount_minor, r.currency)),
      h("td", { "data-column": "status" }, refundBadge(r.status)),
      h("td", { "data-column": "reason" }, r.reason ?? "—"),
      h("td", { "data-column": "failure" }, r.failure_reason ?? "—"),
      h("td", { "data-column": "reference" }, r.gateway_reference ? h("code", {}, r.gateway_reference) : "—"),
    ),
  );
  return h(
    "div",
    { class: "table-scroll", tabindex: "0", role: "region", "aria-labelledby": "refunds-heading" },
    h(
      "table",
      { "data-testid": "refunds-table" },
      h("caption", {}, "Refunds asked for here, oldest first"),
      h("thead", {}, h("tr", {}, ["Requested", "Amount", "Status", "Reason", "Why it failed", "Gateway reference"].map((label, i) => h("th", { scope: "col", class: i === 1 ? "numeric" : null }, label)))),
      h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 6, class: "empty", "data-testid": "no-refunds" }, "No refunds asked for."))),
    ),
  );
}

function eventDetails(event) {
  const p = event.payload ?? {};
  if (event.event_type === "STATUS_CHANGED") {
    const change = `${event.from_status ?? "—"} → ${event.to_status ?? "—"}`;
    return p.reason ? `${change} (${p.reason})` : change;
  }
  if (event.event_type === "PAYMENT_RECORDED" && p.currency) {
    return `${PAYMENT_KINDS[p.kind] ?? p.kind} ${money(p.amount_minor, p.currency)}`;
  }
  if (event.event_type === "NOTE" && p.refund_id && p.currency) {
    return `Refund of ${money(p.amount_minor, p.currency)} requested${p.reason ? `: ${p.reason}` : ""}`;
  }
  if (event.event_type === "TRACKING_UPDATED" && p.tracking_number) {
    return `${p.tracking_number}: ${p.from ?? "—"} → ${p.to ?? "—"}`;
  }
  const parts = Object.entries(p).map(([key, value]) => `${key}: ${typeof value === "object" ? JSON.stringify(value) : value}`);
  return parts.length ? parts.join(", ") : "—";
}

function historyTable(events) {
  const rows = events.map((e) =>
    h(
      "tr",
      { "data-key": e.id, "data-event": e.event_type },
      h("th", { scope: "row" }, moment(e.created_at)),
      h("td", {}, EVENT_LABELS[e.event_type] ?? e.event_type),
      h("td", {}, eventDetails(e)),
    ),
  );
  return h(
    "div",
    { class: "table-scroll", tabindex: "0", role: "region", "aria-labelledby": "history-heading" },
    h(
      "table",
      { "data-testid": "history-table" },
      h("caption", {}, "The order's history, oldest first"),
      h("thead", {}, h("tr", {}, ["When", "What", "Details"].map((label) => h("th", { scope: "col" }, label)))),
      h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 3, class: "empty" }, "No history yet."))),
    ),
  );
}

/** The money the Refund form works in: the order's own currency, else the first paid. */
function refundMoney(order) {
  return order.money.find((m) => m.currency === order.currency) ?? order.money[0] ?? null;
}

/** What the API's answer about a refund means for the seller, in one sentence. */
function refundOutcome(refund) {
  const amount = money(refund.amount_minor, refund.currency);
  switch (refund.status) {
    case "SUCCEEDED":
      return `Refunded ${amount} to the buyer.`;
    case "PENDING":
      return `The gateway accepted the refund of ${amount}; the money is on its way back to the buyer.`;
    case "REQUESTED":
      return `The refund of ${amount} is asked for, but the gateway has not answered yet. PixEcom asks it again; the amount stays reserved meanwhile.`;
    case "FAILED":
      return `The refund of ${amount} failed: ${refund.failure_reason ?? "the gateway gave no reason"}. Nothing was refunded.`;
    default:
      return `The refund of ${amount} is ${refund.status}.`;
  }
}

function newIdempotencyKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  // crypto.randomUUID needs a secure context; a plain-http deployment on a LAN address
  // still gets 122 random bits.
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * The Refund section. `current()` answers the order as last read; `refresh()` reads it
 * again and redraws the money, refunds and history.
 */
function refundSection(orderId, current, refresh) {
  const amountInput = h("input", { type: "text", id: "refund-amount", name: "amount", inputmode: "decimal", autocomplete: "off", required: true, "aria-describedby": "refund-amount-hint refund-amount-error" });
  const amountHint = h("p", { class: "hint", id: "refund-amount-hint" });
  const amountError = h("p", { class: "field-error", id: "refund-amount-error", "data-testid": "refund-amount-error", hidden: true });
  const reasonInput = h("input", { type: "text", id: "refund-reason", name: "reason", maxlength: 500, autocomplete: "off" });
  const reviewButton = h("button", { type: "submit", class: "button", "data-testid": "refund-review" }, "Refund…");
  const question = h("p", { class: "question", id: "refund-question", tabindex: "-1", "data-testid": "refund-question" });
  const confirmButton = h("button", { type: "button", class: "button", "data-testid": "refund-confirm" }, "Refund");
  const cancelButton = h("button", { type: "button", class: "button secondary", "data-testid": "refund-cancel" }, "Cancel");
  const confirmation = h(
    "div",
    { class: "confirmation", role: "group", "aria-labelledby": "refund-question", "data-testid": "refund-confirmation", hidden: true },
    question,
    h("div", { class: "actions" }, confirmButton, cancelButton),
  );
  // A live region that is always in the page (one shown only with its content is often
  // not announced): the outcome is announced when it is put in, and focused.
  const result = h("div", { tabindex: "-1", "aria-live": "polite", "data-testid": "refund-result" });
  const problem = h("p", { class: "inline-alert", role: "alert", tabindex: "-1", "data-testid": "refund-problem", hidden: true });
  const unavailable = h("p", { class: "note", "data-testid": "refund-unavailable", hidden: true });

  // The attempt being confirmed or retried: its body and the key it is sent with. Kept
  // after a lost answer so "Try again" is the same refund; cleared once the API answered.
  let attempt = null;

  function say(element, text) {
    element.textContent = text;
    element.hidden = !text;
  }

  function prefill() {
    const m = refundMoney(current());
    const refundable = m ? m.refundable_minor : 0;
    form.hidden = refundable <= 0;
    say(unavailable, m ? (refundable > 0 ? "" : "Nothing is left to refund on this order.") : "Nothing was paid on this order yet, so there is nothing to refund.");
    if (m) {
      amountInput.value = refundable > 0 ? decimalOf(refundable, m.currency) : "";
      amountHint.textContent = `In ${m.currency}. Up to ${money(refundable, m.currency)} can be refunded.`;
    }
  }

  function clearResult() {
    replace(result);
    delete result.dataset.status;
  }

  function closeConfirmation() {
    confirmation.hidden = true;
    reviewButton.disabled = false;
    amountInput.disabled = false;
    reasonInput.disabled = false;
  }

  const form = h(
    "form",
    {
      class: "refund-form",
      "data-testid": "refund-form",
      novalidate: true,
      onsubmit: (event) => {
        event.preventDefault();
        const m = refundMoney(current());
        if (!m) return;
        say(problem, "");
        const parsed = parseAmount(amountInput.value, m.currency);
        if (parsed.error) {
          say(amountError, parsed.error);
          amountInput.setAttribute("aria-invalid", "true");
          amountInput.focus();
          return;
        }
        say(amountError, "");
        amountInput.removeAttribute("aria-invalid");
        const reason = reasonInput.value.trim() || null;
        if (!attempt || attempt.amountMinor !== parsed.minor || attempt.reason !== reason || attempt.currency !== m.currency) {
          attempt = { amountMinor: parsed.minor, currency: m.currency, reason, key: null };
        }
        const amount = money(parsed.minor, m.currency);
        question.textContent = `Refund ${amount} to the buyer?${reason ? ` Reason: ${reason}` : ""}`;
        confirmButton.textContent = attempt.key ? `Try again: refund ${amount}` : `Yes, refund ${amount}`;
        reviewButton.disabled = true;
        amountInput.disabled = true;
        reasonInput.disabled = true;
        clearResult();
        confirmation.hidden = false;
        question.focus();
      },
    },
    h("div", { class: "field" }, h("label", { for: "refund-amount" }, "Amount to refund"), amountInput, amountHint, amountError),
    h("div", { class: "field" }, h("label", { for: "refund-reason" }, "Reason (optional, passed to the payment gateway)"), reasonInput),
    h("div", { class: "actions" }, reviewButton),
  );

  cancelButton.addEventListener("click", () => {
    // Nothing was sent: the next confirmation is a new attempt with a new key.
    if (attempt && !attempt.key) attempt = null;
    closeConfirmation();
    reviewButton.focus();
  });

  confirmButton.addEventListener("click", async () => {
    if (!attempt) return;
    // One key per confirmed attempt; a retry of an attempt whose answer was lost keeps it.
    attempt.key ??= newIdempotencyKey();
    const sent = attempt;
    confirmButton.disabled = true;
    cancelButton.disabled = true;
    confirmButton.setAttribute("aria-busy", "true");
    say(problem, "");
    clearResult();
    let refund = null;
    try {
      refund = await request(`/orders/${orderId}/refunds`, {
        method: "POST",
        body: { amount_minor: sent.amountMinor, reason: sent.reason },
        headers: { "Idempotency-Key": sent.key },
      });
      attempt = null;
    } catch (error) {
      if (error instanceof SessionEnded) return; // the shell shows the login page
      confirmButton.disabled = false;
      cancelButton.disabled = false;
      confirmButton.removeAttribute("aria-busy");
      if (error instanceof ApiError && error.status < 500) {
        // The API refused this request (409 too much, nothing to refund; 422): nothing
        // was refunded, and a corrected request is a new attempt with a new key.
        attempt = null;
        closeConfirmation();
        say(problem, `The refund was not made: ${error.message}`);
        problem.focus();
        return;
      }
      // No answer (network error, server error): the refund may or may not have been
      // made. The retry sends the same key, so it cannot be made twice.
      const amount = money(sent.amountMinor, sent.currency);
      confirmButton.textContent = `Try again: refund ${amount}`;
      say(problem, `No answer from the server (${error.message}), so it is not known whether the refund was made. Try again: the same refund is sent, never a second one.`);
      problem.focus();
      return;
    }
    confirmButton.disabled = false;
    cancelButton.disabled = false;
    confirmButton.removeAttribute("aria-busy");
    closeConfirmation();
    reasonInput.value = "";
    const tone = REFUND_STATUSES[refund.status]?.[1] ?? "muted";
    replace(
      result,
      h("p", { class: `result ${tone}` }, refundBadge(refund.status), " ", h("span", { "data-testid": "refund-outcome" }, refundOutcome(refund))),
    );
    result.dataset.status = refund.status;
    result.focus();
    try {
      await refresh();
    } catch (error) {
      if (error instanceof SessionEnded) return;
      say(problem, `The refund was sent, but the order could not be read again: ${error instanceof ApiError ? error.message : error.message}. Reload the page to see it.`);
    }
  });

  const section = h(
    "section",
    { class: "refund", "aria-labelledby": "refund-heading", "data-testid": "refund-section" },
    h("h2", { id: "refund-heading" }, "Refund the buyer"),
    unavailable,
    form,
    confirmation,
    problem,
    result,
  );
  return { section, prefill };
}

/** One order: status, totals, money per currency, refunds, history and the Refund action. */
export async function orderView(context, orderId) {
  if (!ORDER_ID.test(orderId)) throw new ApiError(404, "not_found", "There is no such order.");
  let [order, events] = await Promise.all([get(`/orders/${orderId}`), getAll(`/orders/${orderId}/events`)]);
  const moneyHolder = h("div", { "data-testid": "order-money" });
  const refundsHolder = h("div", { "data-testid": "order-refunds" });
  const historyHolder = h("div", { "data-testid": "order-history" });
  const statusHolder = h("dd", {});

  function draw() {
    replace(statusHolder, statusBadge(order.status));
    replace(moneyHolder, moneyTable(order));
    replace(refundsHolder, refundsTable(order));
    replace(historyHolder, events.truncated ? h("p", { class: "note" }, "Only the first entries are shown.") : null, historyTable(events.items));
  }

  const refund = refundSection(
    orderId,
    () => order,
    async () => {
      [order, events] = await Promise.all([get(`/orders/${orderId}`), getAll(`/orders/${orderId}/events`)]);
      draw();
      refund.prefill();
    },
  );
  draw();
  refund.prefill();
  return [
    h("p", { class: "breadcrumb" }, h("a", { href: "#/orders" }, "← All orders")),
    h("h1", { "data-testid": "order-title" }, `Order ${order.id.slice(0, 8)}`),
    h(
      "dl",
      { class: "facts", "data-testid": "order-facts" },
      h("dt", {}, "Status"), statusHolder,
      h("dt", {}, "Created"), h("dd", {}, moment(order.created_at)),
      h("dt", {}, "Customer"), h("dd", { "data-testid": "order-customer" }, order.customer_email),
      h("dt", {}, "Came from"), h("dd", { "data-testid": "order-attribution" }, cameFrom(order.attribution)),
      h("dt", {}, "Subtotal"), h("dd", { "data-testid": "order-subtotal", "data-minor": order.subtotal_minor }, money(order.subtotal_minor, order.currency)),
      h("dt", {}, "Total"), h("dd", { "data-testid": "order-total", "data-minor": order.total_minor }, money(order.total_minor, order.currency)),
      h("dt", {}, "Payment"), h("dd", {}, order.payment_gateway ? `${order.payment_gateway} · ${order.payment_id ?? "—"}` : "None yet"),
      h("dt", {}, "Order id"), h("dd", {}, h("code", {}, order.id)),
    ),
    h("h2", { id: "money-heading" }, "Money"),
    moneyHolder,
    refund.section,
    h("h2", { id: "refunds-heading" }, "Refunds"),
    refundsHolder,
    h("h2", { id: "history-heading" }, "History"),
    historyHolder,
  ];
}
