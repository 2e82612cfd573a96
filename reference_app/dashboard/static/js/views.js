// The dashboard's pages. Each view reads the public API with the seller's own login and
// renders what it answered — no number is computed here that the API did not send,
// except formatting (SELLER-1: real numbers, never fake data).

import { get, getAll } from "./api.js";
import { overviewChart } from "./chart.js";
import { h } from "./dom.js";
import { count, day, lag, moment, money, roas } from "./format.js";
import { sortableTable } from "./table.js";

function rangeQuery(range) {
  return `since=${range.since}&until=${range.until}`;
}

/** The date-range form; submitting navigates to `section` with the new range. */
export function rangeForm(section, range) {
  const since = h("input", { type: "date", id: "range-since", name: "since", value: range.since, required: true });
  const until = h("input", { type: "date", id: "range-until", name: "until", value: range.until, required: true });
  return h(
    "form",
    {
      class: "range",
      "aria-label": "Date range",
      "data-testid": "range-form",
      onsubmit: (event) => {
        event.preventDefault();
        if (!since.value || !until.value) return;
        location.hash = `#/${section}?since=${since.value}&until=${until.value}`;
      },
    },
    h("label", { for: "range-since" }, "From"),
    since,
    h("label", { for: "range-until" }, "To"),
    until,
    h("button", { type: "submit", class: "button" }, "Apply"),
  );
}

function figure(label, testid, text, minor) {
  return h(
    "div",
    { class: "figure" },
    h("dt", {}, label),
    h("dd", { "data-testid": testid, "data-minor": minor ?? null }, text),
  );
}

/** The days of a range whose figures are not final yet, and why (issue 16). */
function pendingReason(d, currency) {
  const reasons = [];
  const waiting = d.fx_pending_currencies ?? [];
  if (waiting.length) {
    const pairs = waiting.map((c) => `${c}/${currency}`).join(", ");
    reasons.push(`converted provisionally, waiting for the ${pairs} rate${waiting.length === 1 ? "" : "s"} of the day`);
  }
  if (d.needs_reaggregation) reasons.push("being recomputed");
  return reasons.join("; ");
}

function pendingNote(data, currency) {
  if (!data.pending_days) return null;
  const pending = data.days.filter((d) => (d.fx_pending_currencies ?? []).length || d.needs_reaggregation);
  const n = data.pending_days;
  return h(
    "div",
    { class: "pending", "data-testid": "pending-days" },
    h("p", {}, `${n} day${n === 1 ? "" : "s"} of this range ${n === 1 ? "is" : "are"} not final yet; ${n === 1 ? "its" : "their"} figures may still change:`),
    h(
      "ul",
      {},
      pending.map((d) => h("li", { "data-day": d.day }, `${day(d.day)}: ${pendingReason(d, currency)}.`)),
    ),
    pending.some((d) => (d.fx_pending_currencies ?? []).length)
      ? h(
          "p",
          {},
          "Until a day's rate is published, its money is converted at the latest rate of the week before, or left out when there is none. A rate the reference source does not publish can be entered under ",
          h("a", { href: "#/currency" }, "Currency"),
          ".",
        )
      : null,
  );
}

/** A day of the days table, marked when its figures are not final yet. */
function dayCell(d) {
  const waiting = (d.fx_pending_currencies ?? []).length > 0;
  if (!waiting && !d.needs_reaggregation) return day(d.day);
  const label = waiting ? "Provisional" : "Recomputing";
  return [day(d.day), " ", h("span", { class: "badge warn", "data-pending": waiting ? "fx" : "recompute" }, label)];
}

/** What the totals hold that no sellpage or campaign can claim (`unattributed`). */
function unattributedSection(u, currency) {
  return h(
    "section",
    { class: "unattributed", "aria-labelledby": "unattributed-heading", "data-testid": "overview-unattributed" },
    h("h2", { id: "unattributed-heading" }, "Unattributed"),
    h("p", { class: "note" }, "Counted in the totals above, but claimed by no sellpage or no campaign."),
    h(
      "dl",
      { class: "figures" },
      figure("Spend of campaigns linked to no sellpage", "unattributed-spend", money(u.spend_minor, currency), u.spend_minor),
      figure("Orders without a campaign", "no-campaign-orders", count(u.no_campaign_orders)),
      figure("Net revenue without a campaign", "no-campaign-revenue", money(u.no_campaign_net_revenue_minor, currency), u.no_campaign_net_revenue_minor),
      figure("Orders without a sellpage", "no-sellpage-orders", count(u.no_sellpage_orders)),
      figure("Net revenue without a sellpage", "no-sellpage-revenue", money(u.no_sellpage_net_revenue_minor, currency), u.no_sellpage_net_revenue_minor),
    ),
  );
}

/** Overview: totals over all spend and revenue, what no sellpage or campaign claims,
 * a chart and a table of the range's days. */
export async function overviewView(context, range) {
  const data = await get("/stats/overview", range);
  const currency = data.reporting_currency;
  const totals = data.totals;
  const rows = data.days.map((d) => ({ ...d, roasValue: d.roas === null ? null : Number(d.roas) }));
  return [
    h("h1", {}, "Overview"),
    rangeForm("overview", range),
    h(
      "p",
      { class: "range-note", "data-testid": "overview-range" },
      `${day(data.since)} – ${day(data.until)}, in ${currency}: all spend of every connected ad account and all revenue`,
    ),
    h(
      "dl",
      { class: "figures", "data-testid": "overview-totals" },
      figure("Spend", "total-spend", money(totals.spend_minor, currency), totals.spend_minor),
      figure("Net revenue", "total-revenue", money(totals.net_revenue_minor, currency), totals.net_revenue_minor),
      figure("Orders", "total-orders", count(totals.orders)),
      figure("ROAS", "total-roas", roas(totals.roas)),
      figure("Refunds", "total-refunds", money(totals.refunds_minor, currency), totals.refunds_minor),
    ),
    pendingNote(data, currency),
    unattributedSection(data.unattributed, currency),
    h("figure", { class: "chart-figure" }, overviewChart(data), h("figcaption", {}, h("span", { class: "key spend" }, "Spend"), h("span", { class: "key revenue" }, "Net revenue"), h("span", { class: "key roas" }, "ROAS"))),
    sortableTable({
      caption: "Days",
      testid: "days-table",
      rows,
      rowKey: (r) => r.day,
      pageSize: 31,
      sortKey: "day",
      direction: "ascending",
      empty: "No figures in this range.",
      columns: [
        { key: "day", label: "Day", value: (r) => r.day, render: dayCell },
        { key: "spend", label: "Spend", numeric: true, value: (r) => r.spend_minor, render: (r) => money(r.spend_minor, currency) },
        { key: "gross", label: "Gross revenue", numeric: true, value: (r) => r.gross_revenue_minor, render: (r) => money(r.gross_revenue_minor, currency) },
        { key: "refunds", label: "Refunds", numeric: true, value: (r) => r.refunds_minor + r.chargebacks_minor, render: (r) => money(r.refunds_minor + r.chargebacks_minor, currency) },
        { key: "net", label: "Net revenue", numeric: true, value: (r) => r.net_revenue_minor, render: (r) => money(r.net_revenue_minor, currency) },
        { key: "orders", label: "Orders", numeric: true, value: (r) => r.orders, render: (r) => count(r.orders) },
        { key: "roas", label: "ROAS", numeric: true, value: (r) => r.roasValue, render: (r) => roas(r.roas) },
      ],
    }),
  ];
}

/** The foot row of a stats table holding the overview's totals for the same range. */
function overviewTotalsRow(cells) {
  return {
    key: "overview-totals",
    label: [h("span", {}, "Total"), " ", h("small", { class: "muted" }, "(as on the overview)")],
    cells,
  };
}

function truncatedNote(truncated) {
  return truncated
    ? h("p", { class: "note" }, "Only the first rows are shown; narrow the range to see the rest.")
    : null;
}

const ENTITY_STATUS_LABELS = { ACTIVE: "Active", PAUSED: "Paused", ARCHIVED: "Archived", DELETED: "Deleted" };
const ENTITY_STATUS_BADGES = { ACTIVE: "ok", PAUSED: "warn", ARCHIVED: "muted", DELETED: "bad" };

/** A campaign's, ad set's or ad's status as the network last named it; "—" when unknown. */
function entityStatus(status) {
  if (!status) return "—";
  return h("span", { class: `badge ${ENTITY_STATUS_BADGES[status] ?? "muted"}`, "data-status": status }, ENTITY_STATUS_LABELS[status] ?? status);
}

/** An entity's name, with the network's id beside it when the name is not just the id. */
function entityName(name, externalId, link) {
  const label = h("span", { class: "entity-name" }, link ? h("a", { href: link }, name) : name);
  if (name === externalId) return label;
  return h("span", {}, label, " ", h("small", { class: "muted" }, externalId));
}

/**
 * Campaigns: every campaign with its figures over the range, sortable. The network's own
 * numbers are in the ad account's currency; spend, net revenue (of the orders whose
 * landing URL named the campaign), orders and ROAS in the reporting currency, whose
 * spend adds up to the overview's. The foot holds the orders no campaign claims and the
 * overview's totals.
 */
export async function campaignsView(context, range) {
  const [campaigns, figures, overview] = await Promise.all([
    getAll("/campaigns"),
    getAll("/stats/entities", { ...range, level: "campaign" }),
    get("/stats/overview", range),
  ]);
  const currency = overview.reporting_currency;
  const byExternal = new Map(figures.items.map((f) => [f.entity_id, f]));
  const rows = campaigns.items.map((c) => {
    const f = byExternal.get(c.external_id);
    byExternal.delete(c.external_id);
    return { id: c.id, name: c.name, externalId: c.external_id, status: c.status, figures: f ?? null };
  });
  // Figures of campaigns not (yet) in the synced hierarchy still count.
  for (const f of byExternal.values()) {
    rows.push({ id: null, name: f.name ?? f.entity_id, externalId: f.entity_id, status: f.status ?? null, figures: f });
  }
  const spendOf = (r) => r.figures?.spend_minor ?? 0;
  const reportingSpendOf = (r) => r.figures?.spend_reporting_minor ?? 0;
  const inReporting = (field) => (r) => (r.figures ? money(r.figures[field], r.figures.reporting_currency) : "—");
  const unattributed = figures.extras?.unattributed ?? overview.unattributed;
  const totals = overview.totals;
  return [
    h("h1", {}, "Campaigns"),
    rangeForm("campaigns", range),
    truncatedNote(campaigns.truncated || figures.truncated),
    pendingNote(overview, currency),
    h(
      "p",
      { class: "note", "data-testid": "campaigns-currencies" },
      `Spend (account) is in each ad account's own currency; the other money is in ${currency}, converted at each day's rate. Revenue counts for a campaign when the order's landing URL named it.`,
    ),
    sortableTable({
      caption: "Campaigns",
      testid: "campaigns-table",
      rows,
      rowKey: (r) => r.id ?? r.name,
      sortKey: "spend-reporting",
      direction: "descending",
      empty: "No campaigns yet: connect an ad account.",
      columns: [
        {
          key: "name",
          label: "Campaign",
          value: (r) => r.name,
          render: (r) => entityName(r.name, r.externalId, r.id ? `#/campaigns/${r.id}?${rangeQuery(range)}` : null),
        },
        { key: "status", label: "Status", value: (r) => r.status ?? "", render: (r) => entityStatus(r.status) },
        { key: "spend", label: "Spend (account)", numeric: true, value: spendOf, render: (r) => (r.figures ? money(r.figures.spend_minor, r.figures.currency) : "—") },
        { key: "spend-reporting", label: `Spend (${currency})`, numeric: true, value: reportingSpendOf, render: inReporting("spend_reporting_minor") },
        { key: "net", label: "Net revenue", numeric: true, value: (r) => r.figures?.net_revenue_minor ?? 0, render: inReporting("net_revenue_minor") },
        { key: "orders", label: "Orders", numeric: true, value: (r) => r.figures?.orders ?? 0, render: (r) => count(r.figures?.orders ?? 0) },
        { key: "roas", label: "ROAS", numeric: true, value: (r) => ((r.figures?.roas ?? null) === null ? null : Number(r.figures.roas)), render: (r) => roas(r.figures?.roas ?? null) },
        { key: "impressions", label: "Impressions", numeric: true, value: (r) => r.figures?.impressions ?? 0, render: (r) => count(r.figures?.impressions ?? 0) },
        { key: "clicks", label: "Clicks", numeric: true, value: (r) => r.figures?.clicks ?? 0, render: (r) => count(r.figures?.clicks ?? 0) },
        { key: "purchases", label: "Purchases", numeric: true, value: (r) => r.figures?.purchases ?? 0, render: (r) => count(r.figures?.purchases ?? 0) },
      ],
      footer: [
        {
          key: "no-campaign",
          label: [h("span", {}, "Orders without a campaign"), " ", h("small", { class: "muted" }, "(their landing URL named none we know)")],
          cells: {
            net: money(unattributed.no_campaign_net_revenue_minor, currency),
            orders: count(unattributed.no_campaign_orders),
          },
        },
        overviewTotalsRow({
          "spend-reporting": money(totals.spend_minor, currency),
          net: money(totals.net_revenue_minor, currency),
          orders: count(totals.orders),
          roas: roas(totals.roas),
        }),
      ],
    }),
  ];
}

/** One campaign: what it is, and its days over the range. */
export async function campaignView(context, range, campaignId) {
  const [campaign, data, adsets] = await Promise.all([
    get(`/campaigns/${encodeURIComponent(campaignId)}`),
    get(`/stats/campaigns/${encodeURIComponent(campaignId)}/days`, range),
    getAll("/adsets", { campaign_id: campaignId }),
  ]);
  const currency = data.currency;
  const adsetNames = new Map(adsets.items.map((s) => [s.id, s.name]));
  const ads = (await Promise.all(adsets.items.map((s) => getAll("/ads", { adset_id: s.id })))).flatMap((answer) => answer.items);
  return [
    h("p", { class: "breadcrumb" }, h("a", { href: `#/campaigns?${rangeQuery(range)}` }, "← All campaigns")),
    h("h1", { "data-testid": "campaign-name" }, campaign.name),
    h(
      "dl",
      { class: "facts" },
      h("dt", {}, "Status"), h("dd", { "data-testid": "campaign-status" }, entityStatus(campaign.status)),
      h("dt", {}, "Network"), h("dd", {}, `${data.network} · ${campaign.external_id}`),
      h("dt", {}, "Sellpage"), h("dd", {}, campaign.sellpage_id ? "Linked" : "Not linked"),
    ),
    rangeForm(`campaigns/${campaignId}`, range),
    h(
      "dl",
      { class: "figures", "data-testid": "campaign-totals" },
      figure("Spend", "campaign-spend", money(data.totals.spend_minor, currency), data.totals.spend_minor),
      figure("Impressions", "campaign-impressions", count(data.totals.impressions)),
      figure("Clicks", "campaign-clicks", count(data.totals.clicks)),
      figure("Purchases", "campaign-purchases", count(data.totals.purchases)),
    ),
    sortableTable({
      caption: "Campaign days",
      testid: "campaign-days-table",
      rows: data.days,
      rowKey: (r) => r.day,
      pageSize: 31,
      sortKey: "day",
      empty: "No figures in this range.",
      columns: [
        { key: "day", label: "Day", value: (r) => r.day, render: (r) => day(r.day) },
        { key: "spend", label: "Spend", numeric: true, value: (r) => r.spend_minor, render: (r) => money(r.spend_minor, currency) },
        { key: "impressions", label: "Impressions", numeric: true, value: (r) => r.impressions, render: (r) => count(r.impressions) },
        { key: "clicks", label: "Clicks", numeric: true, value: (r) => r.clicks, render: (r) => count(r.clicks) },
        { key: "purchases", label: "Purchases", numeric: true, value: (r) => r.purchases, render: (r) => count(r.purchases) },
      ],
    }),
    truncatedNote(adsets.truncated),
    sortableTable({
      caption: "Ad sets",
      testid: "campaign-adsets-table",
      rows: adsets.items,
      rowKey: (r) => r.id,
      sortKey: "name",
      empty: "No ad sets synced yet.",
      columns: [
        { key: "name", label: "Ad set", value: (r) => r.name, render: (r) => entityName(r.name, r.external_id) },
        { key: "status", label: "Status", value: (r) => r.status, render: (r) => entityStatus(r.status) },
      ],
    }),
    sortableTable({
      caption: "Ads",
      testid: "campaign-ads-table",
      rows: ads,
      rowKey: (r) => r.id,
      sortKey: "name",
      empty: "No ads synced yet.",
      columns: [
        { key: "name", label: "Ad", value: (r) => r.name, render: (r) => entityName(r.name, r.external_id) },
        { key: "adset", label: "Ad set", value: (r) => adsetNames.get(r.adset_id) ?? "" },
        { key: "status", label: "Status", value: (r) => r.status, render: (r) => entityStatus(r.status) },
      ],
    }),
  ];
}

/**
 * Sellpages: each sellpage's spend, net revenue, orders and ROAS over the range. The foot
 * holds what no sellpage claims (spend of campaigns linked to none, orders naming none)
 * and the overview's totals: the columns add up to them.
 */
export async function sellpagesView(context, range) {
  const [pages, overview] = await Promise.all([getAll("/stats/sellpages", range), get("/stats/overview", range)]);
  const currency = overview.reporting_currency;
  const rows = pages.items.map((p) => ({ ...p, roasValue: p.roas === null ? null : Number(p.roas) }));
  const unattributed = pages.extras?.unattributed ?? overview.unattributed;
  const totals = overview.totals;
  return [
    h("h1", {}, "Sellpages"),
    rangeForm("sellpages", range),
    truncatedNote(pages.truncated),
    pendingNote(overview, currency),
    sortableTable({
      caption: "Sellpages",
      testid: "sellpages-table",
      rows,
      rowKey: (r) => r.sellpage_id,
      sortKey: "net",
      direction: "descending",
      empty: "No sellpages yet.",
      columns: [
        { key: "title", label: "Sellpage", value: (r) => r.title },
        { key: "slug", label: "Address", value: (r) => r.slug },
        { key: "spend", label: "Spend", numeric: true, value: (r) => r.spend_minor, render: (r) => money(r.spend_minor, currency) },
        { key: "net", label: "Net revenue", numeric: true, value: (r) => r.net_revenue_minor, render: (r) => money(r.net_revenue_minor, currency) },
        { key: "orders", label: "Orders", numeric: true, value: (r) => r.orders, render: (r) => count(r.orders) },
        { key: "roas", label: "ROAS", numeric: true, value: (r) => r.roasValue, render: (r) => roas(r.roas) },
      ],
      footer: [
        {
          key: "unattributed",
          label: [h("span", {}, "Unattributed"), " ", h("small", { class: "muted" }, "(campaigns linked to no sellpage, orders naming none)")],
          cells: {
            spend: money(unattributed.spend_minor, currency),
            net: money(unattributed.no_sellpage_net_revenue_minor, currency),
            orders: count(unattributed.no_sellpage_orders),
          },
        },
        overviewTotalsRow({
          spend: money(totals.spend_minor, currency),
          net: money(totals.net_revenue_minor, currency),
          orders: count(totals.orders),
          roas: roas(totals.roas),
        }),
      ],
    }),
  ];
}

const TRACKING_LABELS = {
  not_found: "Not found yet",
  info_received: "Label created",
  in_transit: "In transit",
  out_for_delivery: "Out for delivery",
  available_for_pickup: "Ready for pickup",
  delivery_failure: "Delivery failed",
  delivered: "Delivered",
  exception: "Exception",
  expired: "Expired",
};

function trackingCell(records) {
  if (!records || records.length === 0) return h("span", { class: "muted" }, "No tracking");
  return records.map((r) =>
    h("span", { class: `tracking tracking-${r.status}`, "data-tracking": r.status }, `${TRACKING_LABELS[r.status] ?? r.status} (${r.carrier} ${r.tracking_number})`),
  );
}

/** Orders: newest first, page by page (the API's cursors), with tracking state. */
export async function ordersView(context, params) {
  const pageSize = 20;
  const cursor = params.get("cursor");
  const previous = params.getAll("back");
  const page = await get("/orders", { limit: pageSize, cursor });
  const ids = page.items.map((o) => o.id);
  const tracking = new Map();
  if (ids.length) {
    const records = await getAll("/tracking", { order_id: ids });
    for (const record of records.items) {
      if (!tracking.has(record.order_id)) tracking.set(record.order_id, []);
      tracking.get(record.order_id).push(record);
    }
  }
  const rows = page.items.map((o) =>
    h(
      "tr",
      { "data-key": o.id },
      h("th", { scope: "row" }, moment(o.created_at)),
      h("td", { "data-column": "order" }, h("a", { href: `#/orders/${o.id}`, "aria-label": `Order ${o.id.slice(0, 8)}, ${money(o.total_minor, o.currency)}` }, h("code", { title: o.id }, o.id.slice(0, 8)))),
      h("td", { "data-column": "status" }, h("span", { class: `badge status-${o.status.toLowerCase()}` }, o.status)),
      h("td", { class: "numeric" }, money(o.total_minor, o.currency)),
      h("td", {}, o.customer_email),
      h("td", { "data-column": "tracking" }, trackingCell(tracking.get(o.id))),
    ),
  );
  // The pages before this one are remembered in the address ("back", "" = the first page),
  // so Previous and the browser's back button both work with the API's forward cursors.
  const backQuery = new URLSearchParams();
  previous.slice(0, -1).forEach((c) => backQuery.append("back", c));
  if (previous.length && previous[previous.length - 1]) backQuery.set("cursor", previous[previous.length - 1]);
  const nextQuery = new URLSearchParams();
  previous.forEach((c) => nextQuery.append("back", c));
  nextQuery.append("back", cursor ?? "");
  if (page.next_cursor) nextQuery.set("cursor", page.next_cursor);
  return [
    h("h1", {}, "Orders"),
    h(
      "div",
      { class: "table-scroll", tabindex: "0", role: "region", "aria-label": "Orders" },
      h(
        "table",
        { "data-testid": "orders-table" },
        h("caption", {}, "Orders, newest first"),
        h(
          "thead",
          {},
          h("tr", {}, ["Created", "Order", "Status", "Total", "Customer", "Tracking"].map((label, i) => h("th", { scope: "col", class: i === 3 ? "numeric" : null }, label))),
        ),
        h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 6, class: "empty" }, "No orders yet."))),
      ),
    ),
    h(
      "nav",
      { class: "pager", "aria-label": "Order pages" },
      previous.length
        ? h("a", { class: "button secondary", href: `#/orders?${backQuery}`, "data-testid": "orders-previous" }, "Newer orders")
        : null,
      page.next_cursor
        ? h("a", { class: "button secondary", href: `#/orders?${nextQuery}`, "data-testid": "orders-next" }, "Older orders")
        : null,
    ),
  ];
}

function syncState(account) {
  if (account.needs_reconnect) return ["Needs reconnecting", "bad"];
  if (account.throttled_until && Date.parse(account.throttled_until) > Date.now()) {
    return [`Throttled until ${moment(account.throttled_until)}`, "warn"];
  }
  if (account.last_sync_error) return [`Failing (${account.sync_failures} in a row)`, "bad"];
  if (!account.last_synced_at) return ["Not synced yet", "warn"];
  return ["OK", "ok"];
}

/** Sync status of every ad account, and the seller's open problems. */
export async function syncView(context, params) {
  const [accounts, problems] = await Promise.all([
    getAll("/stats/sync-status"),
    get("/problems", { limit: 50, cursor: params.get("cursor") }),
  ]);
  return [
    h("h1", {}, "Sync & problems"),
    sortableTable({
      caption: "Ad accounts",
      testid: "sync-table",
      rows: accounts.items,
      rowKey: (r) => r.ad_account_id,
      sortKey: "account",
      empty: "No ad accounts connected.",
      columns: [
        { key: "account", label: "Ad account", value: (r) => `${r.network} ${r.name}`, render: (r) => `${r.name} (${r.network} ${r.external_id})` },
        { key: "last", label: "Last success", value: (r) => r.last_synced_at, render: (r) => moment(r.last_synced_at) },
        { key: "lag", label: "Lag", numeric: true, value: (r) => r.lag_seconds, render: (r) => lag(r.lag_seconds) },
        {
          key: "state",
          label: "State",
          value: (r) => syncState(r)[0],
          render: (r) => {
            const [text, tone] = syncState(r);
            return h("span", { class: `badge ${tone}`, "data-state": tone }, text);
          },
        },
        { key: "error", label: "Last error", value: (r) => r.last_sync_error ?? "", render: (r) => r.last_sync_error ?? "—" },
      ],
    }),
    h("h2", { id: "problems-heading" }, "Open problems"),
    h(
      "div",
      { class: "table-scroll", tabindex: "0", role: "region", "aria-labelledby": "problems-heading" },
      h(
        "table",
        { "data-testid": "problems-table" },
        h("caption", {}, "Failed jobs, stuck payment webhooks and failing syncs, newest first"),
        h("thead", {}, h("tr", {}, ["When", "Kind", "What", "State", "Attempts", "Error"].map((label) => h("th", { scope: "col" }, label)))),
        h(
          "tbody",
          {},
          problems.items.length
            ? problems.items.map((p) =>
                h(
                  "tr",
                  { "data-kind": p.kind },
                  h("th", { scope: "row" }, moment(p.occurred_at)),
                  h("td", {}, { dead_letter: "Failed job", webhook: "Payment webhook", sync_error: "Sync", token_expiring: "Access ending", payment_mismatch: "Payment mismatch", payment_connection: "Payment account" }[p.kind] ?? p.kind),
                  h("td", {}, p.subject, p.kind === "payment_connection" ? [" · ", h("a", { href: "#/payments" }, "Connect it again under Payments")] : null),
                  h("td", {}, p.state),
                  h("td", { class: "numeric" }, count(p.attempts)),
                  h("td", {}, p.error ?? "—"),
                ),
              )
            : h("tr", {}, h("td", { colspan: 6, class: "empty", "data-testid": "no-problems" }, "No open problems.")),
        ),
      ),
    ),
    problems.next_cursor
      ? h("nav", { class: "pager", "aria-label": "Problem pages" }, h("a", { class: "button secondary", href: `#/sync?cursor=${encodeURIComponent(problems.next_cursor)}` }, "Older problems"))
      : null,
  ];
}
