// The dashboard shell: hash routes, the login page, the header, and error reporting.
//
// Routes (the part after "#"):
//   /login                          the login form (also shown whenever no login is held)
//   /overview?since=&until=         totals, chart and days
//   /campaigns?since=&until=        campaigns table
//   /campaigns/<id>?since=&until=   one campaign's days
//   /sellpages?since=&until=        sellpages table
//   /orders?cursor=&back=           orders, newest first, with tracking state
//   /orders/<id>                    one order: money per currency, refunds, history,
//                                   and the Refund action
//   /sync?cursor=                   sync status per ad account and open problems
//   /ad-accounts?connection=        the seller's ad accounts: connect, choose (the
//                                   network's consent flow returns with ?connection=),
//                                   backfill progress, reconnect, disconnect
//   /payments?connection=|error=    the seller's own gateway accounts: connect (consent
//                                   page or credentials), disconnect; the gateway's
//                                   callback returns with ?connection= or ?error=, said
//                                   once and then removed from the address
//   /currency?since=&until=         the reporting currency (change it, confirmed), the
//                                   seller's own exchange rates of the range (set,
//                                   replace, remove) and their audit

import { ApiError, SessionEnded, get, hasSession, logIn, logOut, onSessionEnded } from "./api.js";
import { h, replace } from "./dom.js";
import { adAccountsView } from "./ad-accounts.js";
import { currencyView } from "./currency.js";
import { orderView } from "./order.js";
import { paymentsView } from "./payments.js";
import { addDays, todayIn } from "./format.js";
import { campaignView, campaignsView, ordersView, overviewView, sellpagesView, syncView } from "./views.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const account = document.getElementById("account");
const sellerName = document.getElementById("seller-name");
const statusLine = document.getElementById("status");
const alertBox = document.getElementById("alert");

const ISO_DAY = /^\d{4}-\d{2}-\d{2}$/;
const DEFAULT_RANGE_DAYS = 30;

// Who is logged in: {seller, user} from /auth/me; null when nobody is.
let context = null;
// Each render gets a number; an answer that arrives after a newer render started is
// dropped, so a slow response never paints over the page the user moved to.
let renderCount = 0;
let endedMessage = "";

function showAlert(message) {
  alertBox.textContent = message;
  alertBox.hidden = !message;
}

function parseRoute() {
  const raw = location.hash.replace(/^#/, "") || "/overview";
  const [path, query = ""] = raw.split("?");
  return { parts: path.split("/").filter(Boolean), params: new URLSearchParams(query) };
}

function rangeOf(params) {
  const until = ISO_DAY.test(params.get("until") ?? "") ? params.get("until") : todayIn(context.seller.timezone);
  const since = ISO_DAY.test(params.get("since") ?? "") ? params.get("since") : addDays(until, -(DEFAULT_RANGE_DAYS - 1));
  return { since, until };
}

function forgetEverything() {
  context = null;
  sellerName.textContent = "";
  nav.hidden = true;
  account.hidden = true;
  replace(main);
}

onSessionEnded(() => {
  // Logged out here, in another tab, or the login was revoked: no data stays on screen.
  if (!endedMessage) endedMessage = "Your session has ended. Please log in again.";
  forgetEverything();
  render();
});

function loginView() {
  const email = h("input", { type: "email", id: "email", name: "email", autocomplete: "username", required: true });
  const password = h("input", { type: "password", id: "password", name: "password", autocomplete: "current-password", required: true });
  const submit = h("button", { type: "submit", class: "button" }, "Log in");
  const form = h(
    "form",
    {
      class: "login",
      "data-testid": "login-form",
      onsubmit: async (event) => {
        event.preventDefault();
        submit.disabled = true;
        showAlert("");
        try {
          await logIn(email.value, password.value);
          endedMessage = "";
          if (parseRoute().parts[0] === "login") location.hash = "#/overview";
          await render();
        } catch (error) {
          if (error instanceof ApiError && error.status === 401) showAlert("Wrong email or password.");
          else if (error instanceof ApiError && error.status === 429) showAlert("Too many attempts. Please wait a few minutes and try again.");
          else showAlert(`Could not log in: ${error.message}`);
          submit.disabled = false;
          password.focus();
        }
      },
    },
    h("h1", {}, "Log in"),
    endedMessage ? h("p", { class: "note", "data-testid": "session-ended" }, endedMessage) : null,
    h("label", { for: "email" }, "Email"),
    email,
    h("label", { for: "password" }, "Password"),
    password,
    submit,
  );
  return form;
}

function markCurrent(section) {
  for (const link of nav.querySelectorAll("a[data-section]")) {
    if (link.dataset.section === section) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

const SECTIONS = {
  overview: (params) => overviewView(context, rangeOf(params)),
  campaigns: (params, parts) =>
    parts[1] ? campaignView(context, rangeOf(params), parts[1]) : campaignsView(context, rangeOf(params)),
  sellpages: (params) => sellpagesView(context, rangeOf(params)),
  orders: (params, parts) => (parts[1] ? orderView(context, parts[1]) : ordersView(context, params)),
  sync: (params) => syncView(context, params),
  "ad-accounts": (params) => adAccountsView(context, params),
  payments: (params) => paymentsView(context, params),
  currency: (params) => currencyView(context, rangeOf(params)),
};

const TITLES = { overview: "Overview", campaigns: "Campaigns", sellpages: "Sellpages", orders: "Orders", sync: "Sync & problems", "ad-accounts": "Ad accounts", payments: "Payments", currency: "Currency" };

// main.renderedRoute names the route whose view main shows once rendering has finished:
// the view is current when it equals location.hash and main is not aria-busy. A property,
// not an attribute: the route may carry another seller's id typed into the address bar,
// and nothing from the address bar is written into the page.
async function render() {
  const current = ++renderCount;
  const route = location.hash;
  main.renderedRoute = null;
  showAlert("");
  if (!hasSession()) {
    forgetEverything();
    document.title = "Log in — PixEcom";
    replace(main, loginView());
    main.querySelector("#email")?.focus();
    main.renderedRoute = route;
    return;
  }
  const { parts, params } = parseRoute();
  const section = SECTIONS[parts[0]] ? parts[0] : "overview";
  main.setAttribute("aria-busy", "true");
  statusLine.textContent = "Loading…";
  try {
    if (!context) {
      const me = await get("/auth/me");
      if (current !== renderCount) return;
      context = me;
      sellerName.textContent = `${me.seller.name} · ${me.user.email}`;
    }
    nav.hidden = false;
    account.hidden = false;
    markCurrent(section);
    const content = await SECTIONS[section](params, parts);
    if (current !== renderCount) return;
    replace(main, content);
    document.title = `${main.querySelector("h1")?.textContent ?? TITLES[section]} — PixEcom`;
    statusLine.textContent = `${TITLES[section]} loaded.`;
  } catch (error) {
    if (current !== renderCount) return;
    if (error instanceof SessionEnded) {
      endedMessage = error.message;
      forgetEverything();
      await render();
      return;
    }
    statusLine.textContent = "";
    if (error instanceof ApiError && error.status === 404) {
      replace(main, h("h1", {}, "Not found"), h("p", { "data-testid": "not-found" }, "There is nothing here for your account."), h("p", {}, h("a", { href: "#/overview" }, "Back to the overview")));
    } else {
      replace(main, h("h1", {}, TITLES[section]));
      showAlert(`Could not load ${TITLES[section].toLowerCase()}: ${error.message}`);
    }
  } finally {
    if (current === renderCount) {
      main.removeAttribute("aria-busy");
      // A view may drop its query from the address with history.replaceState (Payments
      // does once it has said how a connection ended): no hashchange fires for that, so
      // the route it rendered is then the address without the query.
      const withoutQuery = route.split("?")[0];
      main.renderedRoute = location.hash === withoutQuery ? withoutQuery : route;
    }
  }
}

document.getElementById("logout").addEventListener("click", async () => {
  endedMessage = "You have logged out.";
  await logOut();
  history.replaceState(null, "", "#/login");
  await render();
});

window.addEventListener("hashchange", () => {
  render();
});
// A page restored from the back/forward cache must not show what it showed before a
// logout: check the login again.
window.addEventListener("pageshow", (event) => {
  if (event.persisted) render();
});

render();
