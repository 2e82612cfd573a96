// A hand-drawn SVG chart of a range's days: spend and net revenue as bars, ROAS as a
// line on its own scale (with gaps on days without spend, where ROAS is undefined).
// The same numbers are in the table beside it, which is what assistive technology
// reads; the chart is one image with a summary as its accessible name.

import { s } from "./dom.js";
import { addDays, day as formatDay, money, roas as formatRoas } from "./format.js";

const WIDTH = 720;
const HEIGHT = 260;
const MARGIN = { top: 16, right: 48, bottom: 28, left: 80 };

/** Every day from `since` to `until`, with the API's figures or zeros. */
function everyDay(days, since, until) {
  const byDay = new Map(days.map((d) => [d.day, d]));
  const all = [];
  for (let current = since; current <= until; current = addDays(current, 1)) {
    all.push(
      byDay.get(current) ?? { day: current, spend_minor: 0, net_revenue_minor: 0, orders: 0, roas: null },
    );
    if (all.length > 400) break; // the API caps a range at 366 days
  }
  return all;
}

/** The chart for an overview answer. */
export function overviewChart(overview) {
  const currency = overview.reporting_currency;
  const days = everyDay(overview.days, overview.since, overview.until);
  const plotWidth = WIDTH - MARGIN.left - MARGIN.right;
  const plotHeight = HEIGHT - MARGIN.top - MARGIN.bottom;
  const maxMoney = Math.max(1, ...days.map((d) => Math.max(d.spend_minor, d.net_revenue_minor, 0)));
  const ratios = days.map((d) => (d.roas === null ? null : Number(d.roas)));
  const maxRoas = Math.max(1, ...ratios.filter((r) => r !== null));
  const slot = plotWidth / days.length;
  const barWidth = Math.max(1, (slot * 0.8) / 2);
  const y = (minor) => MARGIN.top + plotHeight - (Math.max(0, minor) / maxMoney) * plotHeight;
  const yRoas = (ratio) => MARGIN.top + plotHeight - (Math.max(0, ratio) / maxRoas) * plotHeight;

  const bars = days.map((d, index) => {
    const x = MARGIN.left + index * slot + slot * 0.1;
    return s(
      "g",
      { class: "day", "data-day": d.day },
      s("title", {}, `${formatDay(d.day)}: spend ${money(d.spend_minor, currency)}, net revenue ${money(d.net_revenue_minor, currency)}, ROAS ${formatRoas(d.roas)}`),
      s("rect", { class: "bar spend", x, y: y(d.spend_minor), width: barWidth, height: MARGIN.top + plotHeight - y(d.spend_minor) }),
      s("rect", { class: "bar revenue", x: x + barWidth, y: y(d.net_revenue_minor), width: barWidth, height: MARGIN.top + plotHeight - y(d.net_revenue_minor) }),
    );
  });

  // One polyline per run of days with a ROAS: no line is drawn across a day without spend.
  const lines = [];
  let run = [];
  ratios.forEach((ratio, index) => {
    if (ratio === null) {
      if (run.length) lines.push(run);
      run = [];
      return;
    }
    run.push(`${MARGIN.left + index * slot + slot / 2},${yRoas(ratio)}`);
  });
  if (run.length) lines.push(run);
  const roasLines = lines.map((points) =>
    points.length === 1
      ? s("circle", { class: "roas-point", cx: points[0].split(",")[0], cy: points[0].split(",")[1], r: 3 })
      : s("polyline", { class: "roas-line", points: points.join(" ") }),
  );

  const baseline = MARGIN.top + plotHeight;
  const total = overview.totals;
  return s(
    "svg",
    {
      class: "chart",
      viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
      role: "img",
      "aria-labelledby": "chart-title chart-desc",
      "data-testid": "overview-chart",
      preserveAspectRatio: "xMidYMid meet",
    },
    s("title", { id: "chart-title" }, "Spend, net revenue and ROAS per day"),
    s(
      "desc",
      { id: "chart-desc" },
      `${days.length} days from ${formatDay(overview.since)} to ${formatDay(overview.until)}: spend ${money(total.spend_minor, currency)}, net revenue ${money(total.net_revenue_minor, currency)}, ROAS ${formatRoas(total.roas)}. The table below lists every day.`,
    ),
    s("line", { class: "axis", x1: MARGIN.left, y1: baseline, x2: WIDTH - MARGIN.right, y2: baseline }),
    s("line", { class: "axis", x1: MARGIN.left, y1: MARGIN.top, x2: MARGIN.left, y2: baseline }),
    s("text", { class: "tick", x: MARGIN.left - 6, y: MARGIN.top + 4, "text-anchor": "end" }, money(maxMoney, currency)),
    s("text", { class: "tick", x: MARGIN.left - 6, y: baseline, "text-anchor": "end" }, money(0, currency)),
    s("text", { class: "tick roas", x: WIDTH - MARGIN.right + 6, y: MARGIN.top + 4 }, formatRoas(maxRoas)),
    s("text", { class: "tick", x: MARGIN.left, y: HEIGHT - 8 }, formatDay(overview.since)),
    s("text", { class: "tick", x: WIDTH - MARGIN.right, y: HEIGHT - 8, "text-anchor": "end" }, formatDay(overview.until)),
    bars,
    roasLines,
  );
}
