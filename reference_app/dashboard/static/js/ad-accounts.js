// The "Ad accounts" page: connect a network, choose which of its accounts to sync, watch
// their history being fetched, reconnect, disconnect (issue 14 item 7).
//
// Connecting leaves the dashboard: the network's consent page is another site, which
// sends the browser back through the API's callback to /dashboard/ad-accounts?connection=…,
// which the app sends on to this page's chooser (#/ad-accounts?connection=…). The login
// survives the trip because it lives in this tab's sessionStorage (api.js), which the
// browser keeps for the tab when it navigates away and back to the same origin.
//
// Everything shown is what the API answered (GET /ad-accounts: state, backfill progress,
// token expiry, last sync); nothing is computed here but formatting.

import { ApiError, get, getAll, request } from "./api.js";
import { h, replace } from "./dom.js";
import { moment } from "./format.js";

// While an account's history is being fetched, the list is read again this often.
const POLL_MS = 2000;
// Which account a Reconnect was for, so the chooser that follows has it ticked. Kept in
// sessionStorage because the page is left for the network's consent page in between.
const RECONNECT_KEY = "pixecom.dashboard.reconnect";
const CONNECTION_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const STATES = {
  active: ["Active", "ok"],
  backfilling: ["Fetching history", "warn"],
  token_expiring: ["Access ends soon", "warn"],
  needs_reconnect: ["Needs reconnecting", "bad"],
  disconnected: ["Disconnected", "muted"],
};
// The states a Reconnect button is offered for: the network refused the token, the token
// is about to end, or the seller disconnected the account and may want it back.
const RECONNECTABLE = new Set(["needs_reconnect", "token_expiring", "disconnected"]);

// A message for the next rendering of the list (after the chooser connected accounts).
let notice = "";

function inlineAlert(testid) {
  return h("p", { class: "inline-alert", role: "alert", "data-testid": testid, hidden: true });
}

function say(element, message) {
  element.textContent = message;
  element.hidden = !message;
}

function problemText(error) {
  return error instanceof ApiError ? error.message : `Something went wrong: ${error.message}`;
}

function rememberReconnect(connectionId, externalId) {
  sessionStorage.setItem(RECONNECT_KEY, JSON.stringify({ connection: connectionId, external_id: externalId }));
}

function reconnectFor(connectionId) {
  try {
    const value = JSON.parse(sessionStorage.getItem(RECONNECT_KEY) ?? "null");
    return value && value.connection === connectionId ? value.external_id : null;
  } catch {
    return null;
  }
}

/**
 * Start connecting `network`: the API answers the network's consent page, where the
 * browser goes now; a network connected at once (a pasted token) goes to the chooser.
 */
async function startConnection(network, accessToken, externalId) {
  const body = accessToken ? { network, access_token: accessToken } : { network };
  // "same-origin": the answer sets the cookie that binds the consent flow to this browser
  // (the API's callback refuses a flow finished in another one).
  const started = await request("/ad-accounts/connections", { method: "POST", body, credentials: "same-origin" });
  if (externalId) rememberReconnect(started.id, externalId);
  if (started.authorization_url) location.assign(started.authorization_url);
  else location.hash = `#/ad-accounts?connection=${started.id}`;
}

function connectSection(networks) {
  const problem = inlineAlert("connect-problem");
  const connectable = networks.filter((n) => n.authorization_kind);
  const run = async (button, action) => {
    button.disabled = true;
    say(problem, "");
    try {
      await action();
    } catch (error) {
      say(problem, `Could not start connecting: ${problemText(error)}`);
      button.disabled = false;
    }
  };
  const items = connectable.map((network) => {
    const label = `Connect ${network.display_name}`;
    if (network.authorization_kind === "oauth") {
      const button = h("button", { type: "button", class: "button", "data-network": network.identifier }, label);
      button.addEventListener("click", () => run(button, () => startConnection(network.identifier)));
      return h("li", {}, button);
    }
    // A network without a consent page: the seller pastes the token its own UI issued.
    const id = `token-${network.identifier}`;
    const token = h("input", { type: "password", id, name: "access_token", autocomplete: "off", required: true, "data-token-for": network.identifier });
    const submit = h("button", { type: "submit", class: "button" }, label);
    return h(
      "li",
      {},
      h(
        "form",
        {
          class: "token-form",
          onsubmit: (event) => {
            event.preventDefault();
            if (token.value) run(submit, () => startConnection(network.identifier, token.value));
          },
        },
        h("label", { for: id }, `Access token from ${network.display_name}`),
        token,
        submit,
      ),
    );
  });
  return h(
    "section",
    { "aria-labelledby": "connect-heading", "data-testid": "connect-networks" },
    h("h2", { id: "connect-heading" }, "Connect an ad network"),
    connectable.length
      ? [
          h("p", { class: "note" }, "You approve access on the network's own page, then choose which of your ad accounts PixEcom syncs."),
          h("ul", { class: "networks" }, items),
        ]
      : h("p", { class: "note", "data-testid": "no-networks" }, "No ad network can be connected: this deployment has no ad network plugin installed."),
    problem,
  );
}

async function chooserSection(connectionId) {
  const heading = h("h2", { id: "chooser-heading" }, "Choose the accounts to sync");
  const wrap = (...content) =>
    h("section", { class: "chooser", "aria-labelledby": "chooser-heading", "data-testid": "account-chooser" }, heading, content);
  if (!CONNECTION_ID.test(connectionId)) {
    return wrap(h("p", { class: "note", "data-testid": "chooser-problem" }, "This link names no connection. Connect the network again."));
  }
  let reachable;
  try {
    reachable = await get(`/ad-accounts/connections/${connectionId}`);
  } catch (error) {
    // Another seller's connection, or one that was refused or expired: say so here and
    // still show the seller's accounts below.
    if (!(error instanceof ApiError) || ![404, 422].includes(error.status)) throw error;
    const text =
      error.status === 404
        ? "There is no such connection for your account."
        : error.code === "connection_not_authorized"
          ? "This connection was never authorized: the network's page was left, refused or timed out."
          : error.message;
    return wrap(h("p", { class: "note", "data-testid": "chooser-problem" }, `${text} Connect the network again.`));
  }
  const preselected = reconnectFor(connectionId);
  const problem = inlineAlert("chooser-alert");
  const boxes = [];
  const choices = reachable.accounts.map((account, index) => {
    const id = `choose-${index}`;
    const box = h("input", { type: "checkbox", id, name: "external_id", value: account.external_id, checked: account.external_id === preselected });
    boxes.push(box);
    const facts = [account.external_id, account.currency, account.timezone];
    if (account.network_status !== "active") facts.push(`the network says: ${account.network_status.replace("_", " ")}`);
    if (account.connected) facts.push("already connected: choosing it again renews its access");
    return h(
      "li",
      { class: "choice", "data-external-id": account.external_id },
      box,
      h("label", { for: id }, h("span", { class: "choice-name" }, account.name), h("span", { class: "muted" }, ` (${facts.join(" · ")})`)),
    );
  });
  if (!choices.length) {
    return wrap(h("p", { class: "note", "data-testid": "chooser-problem" }, "This login reaches no ad account. Connect again with a user who has access to your ad accounts."));
  }
  const submit = h("button", { type: "submit", class: "button" }, "Connect selected accounts");
  const form = h(
    "form",
    {
      onsubmit: async (event) => {
        event.preventDefault();
        const externalIds = boxes.filter((box) => box.checked).map((box) => box.value);
        if (!externalIds.length) {
          say(problem, "Choose at least one account.");
          boxes[0].focus();
          return;
        }
        submit.disabled = true;
        say(problem, "");
        try {
          const answer = await request("/ad-accounts", { method: "POST", body: { connection_id: connectionId, external_ids: externalIds } });
          sessionStorage.removeItem(RECONNECT_KEY);
          const names = answer.accounts.map((a) => a.name).join(", ");
          notice = `Connected ${names}. Their history is being fetched; the numbers appear as it arrives.`;
          // The chooser is done: Back does not lead to it again.
          location.replace("#/ad-accounts");
        } catch (error) {
          say(problem, `Could not connect the accounts: ${problemText(error)}`);
          submit.disabled = false;
        }
      },
    },
    h(
      "fieldset",
      {},
      h("legend", {}, "Accounts this connection reaches"),
      h("ul", { class: "choices" }, choices),
    ),
    problem,
    h("div", { class: "actions" }, submit, h("a", { class: "button secondary", href: "#/ad-accounts" }, "Cancel")),
  );
  return wrap(form);
}

function stateCell(account) {
  const [label, tone] = STATES[account.state] ?? [account.state, "muted"];
  const cell = [h("span", { class: `badge ${tone}`, "data-state": account.state }, label)];
  if (account.backfill_progress !== null && account.backfill_progress !== undefined) {
    const percent = Math.floor(account.backfill_progress * 100);
    const text = `${percent} % of history fetched`;
    cell.push(
      h(
        "span",
        { class: "backfill" },
        h("progress", { max: 100, value: percent, "aria-label": `History of ${account.name}`, "data-testid": "backfill-progress" }),
        h("span", { class: "backfill-text" }, text),
      ),
    );
  }
  return cell;
}

function accessCell(account) {
  if (account.state === "disconnected") return h("span", { class: "muted" }, "No access");
  if (!account.token_expires_at) return h("span", { class: "muted" }, "No end date");
  const until = moment(account.token_expires_at);
  return account.state === "token_expiring" ? h("strong", {}, `${until}: reconnect before then`) : until;
}

function accountsTable(accounts, networkNames, actions) {
  const rows = accounts.map((account) => {
    const network = networkNames.get(account.network) ?? account.network;
    const buttons = [];
    if (RECONNECTABLE.has(account.state)) {
      buttons.push(h("button", { type: "button", class: "button", "aria-label": `Reconnect ${account.name}`, onclick: (event) => actions.reconnect(account, event.currentTarget) }, "Reconnect"));
    }
    if (account.state !== "disconnected") {
      buttons.push(h("button", { type: "button", class: "button secondary", "aria-label": `Disconnect ${account.name}`, onclick: (event) => actions.disconnect(account, event.currentTarget) }, "Disconnect"));
    }
    return h(
      "tr",
      { "data-key": account.id, "data-external-id": account.external_id },
      h("th", { scope: "row", "data-column": "account" }, account.name, h("span", { class: "muted account-facts" }, `${network} · ${account.external_id} · ${account.currency}`)),
      h("td", { "data-column": "state" }, stateCell(account)),
      h("td", { "data-column": "access" }, accessCell(account)),
      h("td", { "data-column": "synced" }, moment(account.last_synced_at)),
      h("td", { "data-column": "actions" }, buttons.length ? h("div", { class: "row-actions" }, buttons) : "—"),
    );
  });
  return h(
    "div",
    { class: "table-scroll", tabindex: "0", role: "region", "aria-labelledby": "accounts-heading" },
    h(
      "table",
      { "data-testid": "ad-accounts-table" },
      h("caption", {}, "Your ad accounts, oldest first"),
      h("thead", {}, h("tr", {}, ["Ad account", "State", "Access until", "Last synced", "Actions"].map((label) => h("th", { scope: "col" }, label)))),
      h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 5, class: "empty", "data-testid": "no-ad-accounts" }, "No ad accounts yet: connect a network above."))),
    ),
  );
}

function progressSummary(accounts) {
  const fetching = accounts.filter((a) => a.state === "backfilling").length;
  if (fetching) return `Fetching the history of ${fetching} account${fetching === 1 ? "" : "s"}.`;
  return accounts.some((a) => a.state !== "disconnected") ? "Every connected account's history is fetched." : "";
}

/** Why the network's page sent the seller back without a connection (`?error=<code>`). */
const CALLBACK_ERRORS = {
  access_denied: "You cancelled on the network's page, so nothing was connected.",
  missing_scopes: "The network's page was approved without every permission syncing needs. Connect again and leave them ticked.",
  state_expired: "Connecting took longer than 10 minutes. Connect again.",
  state_used: "That connection link was already used. Connect again.",
  state_not_bound: "That connection was started in another browser. Start connecting from this one.",
  state_of_another_seller: "That connection was started from another PixEcom account.",
  invalid_state: "That connection link is not valid. Connect again.",
  code_refused: "The network refused the authorization. Connect again.",
  missing_code: "The network sent no authorization back. Connect again.",
};

function callbackProblem(code) {
  if (code === null) return null;
  const text = CALLBACK_ERRORS[code] ?? "Connecting did not work. Connect again.";
  return h("p", { class: "alert", role: "alert", "data-testid": "callback-problem" }, text);
}

/** The Ad accounts page; with `?connection=<id>`, the chooser of that connection first. */
export async function adAccountsView(context, params) {
  const connectionId = params.get("connection");
  const callbackError = callbackProblem(params.get("error"));
  const [accounts, networks, chooser] = await Promise.all([
    getAll("/ad-accounts"),
    get("/ad-networks"),
    connectionId !== null ? chooserSection(connectionId) : null,
  ]);
  const networkNames = new Map(networks.networks.map((n) => [n.identifier, n.display_name]));
  const kinds = new Map(networks.networks.map((n) => [n.identifier, n.authorization_kind]));
  const listProblem = inlineAlert("accounts-problem");
  const summary = h("p", { class: "note", "aria-live": "polite", "data-testid": "backfill-summary" }, progressSummary(accounts.items));
  const holder = h("div", { "data-testid": "ad-accounts-list" });
  let timer = null;

  // One pending read at most: a disconnect's refresh replaces the scheduled one.
  function schedule(ms) {
    clearTimeout(timer);
    timer = ms === null ? null : setTimeout(refresh, ms);
  }

  async function refresh() {
    schedule(null);
    if (!holder.isConnected) return; // the seller moved to another page
    try {
      const fresh = await getAll("/ad-accounts");
      if (!holder.isConnected) return;
      show(fresh.items);
    } catch (error) {
      if (!holder.isConnected) return;
      say(listProblem, `Could not refresh the list: ${problemText(error)}`);
      schedule(POLL_MS * 2);
    }
  }

  const actions = {
    reconnect: async (account, button) => {
      button.disabled = true;
      say(listProblem, "");
      if (kinds.get(account.network) === "token") {
        // A pasted-token network: a new token from the network's UI renews the account.
        document.querySelector(`[data-token-for="${account.network}"]`)?.focus();
        button.disabled = false;
        return;
      }
      try {
        await startConnection(account.network, null, account.external_id);
      } catch (error) {
        say(listProblem, `Could not start reconnecting ${account.name}: ${problemText(error)}`);
        button.disabled = false;
      }
    },
    disconnect: async (account, button) => {
      const question = `Disconnect ${account.name}? PixEcom stops syncing it and deletes its stored access; its campaigns and history stay.`;
      if (!window.confirm(question)) return;
      button.disabled = true;
      say(listProblem, "");
      try {
        await request(`/ad-accounts/${account.id}`, { method: "DELETE" });
        notice = `Disconnected ${account.name}.`;
        await refresh();
      } catch (error) {
        say(listProblem, `Could not disconnect ${account.name}: ${problemText(error)}`);
        button.disabled = false;
      }
    },
  };

  function show(items) {
    const noticeLine = notice ? h("p", { class: "notice", role: "status", "data-testid": "ad-accounts-notice" }, notice) : null;
    notice = "";
    replace(holder, noticeLine, accountsTable(items, networkNames, actions));
    const text = progressSummary(items);
    if (summary.textContent !== text) summary.textContent = text;
    schedule(items.some((a) => a.state === "backfilling") ? POLL_MS : null);
  }

  show(accounts.items);
  return [
    h("h1", {}, "Ad accounts"),
    callbackError,
    chooser,
    h("h2", { id: "accounts-heading" }, "Your ad accounts"),
    summary,
    listProblem,
    accounts.truncated ? h("p", { class: "note" }, "Only the first accounts are shown.") : null,
    holder,
    connectSection(networks.networks),
  ];
}
