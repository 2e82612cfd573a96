// The "Payments" page: connect the seller's own account of each installed gateway, see how
// each connection stands, disconnect (issue 15 item 4, the connection half).
//
// Two ways in, as GET /payments/gateways says per gateway:
// - "oauth": the gateway's consent page is another site. Connecting leaves the dashboard;
//   the gateway sends the browser back through the API's callback, which redirects to
//   /dashboard/payments?connection=<id> (or ?error=<code>), which arrives here as
//   #/payments?connection=… The login survives the trip in this tab's sessionStorage.
// - "credentials": a form with the fields the gateway declares; the API has the gateway
//   check them before anything is stored. Secret fields are masked and emptied once sent:
//   nothing typed into them is shown again.
//
// Everything shown is what the API answered (GET /payments/connections, newest first);
// nothing is decided here but which connection of a gateway to show and how to word it.

import { ApiError, get, request } from "./api.js";
import { h, replace } from "./dom.js";
import { moment } from "./format.js";

const CONNECTION_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

// Badge text and tone per state of a gateway ("NONE": never connected).
const STATES = {
  ACTIVE: ["Connected", "ok"],
  PENDING: ["Not connected", "muted"],
  REFUSED: ["Refused", "bad"],
  REVOKED: ["Access revoked", "bad"],
  DISCONNECTED: ["Disconnected", "muted"],
  NONE: ["Not connected", "muted"],
};

/** Why the gateway's page sent the seller back without a connection (`?error=<code>`). */
const CALLBACK_ERRORS = {
  access_denied: "You cancelled on the gateway's page, so no account was connected.",
  state_used: "That connection link was already used. Connect again.",
  state_expired: "Connecting took longer than 10 minutes. Connect again.",
  invalid_state: "That connection link is not valid. Connect again.",
  state_not_bound: "That connection was started in another browser. Start connecting from this one.",
  state_of_another_seller: "That connection was started from another PixEcom account. Log in to that account, or connect from this one.",
  code_refused: "The gateway refused the authorization. Connect again.",
  missing_code: "The gateway sent no authorization back. Connect again.",
  // The API answers this one with JSON for now, not a redirect; ready for when it redirects.
  payment_account_taken: "That account is connected to another PixEcom seller. Each seller connects an account of their own.",
};

// A message for the next rendering of the list (after connecting or disconnecting).
let notice = "";

function inlineAlert(testid) {
  return h("p", { class: "inline-alert", role: "alert", "data-testid": testid, hidden: true });
}

function say(element, message) {
  element.textContent = message;
  element.hidden = !message;
}

/**
 * Put `message` into the live region `element` once it is on the page: a live region
 * inserted with its text already in it is not reliably announced, one that changes is.
 */
function announce(element, message) {
  const fill = () => {
    if (element.isConnected) say(element, message);
    else requestAnimationFrame(fill);
  };
  requestAnimationFrame(fill);
}

function accountName(connection) {
  const { display_name: name, account_id: id } = connection;
  if (name && id && name !== id) return `${name} (${id})`;
  return name || id || "your account";
}

/** What the API refused, in the seller's words where the code is known. */
function problemText(error, gatewayName) {
  if (!(error instanceof ApiError)) return `Something went wrong: ${error.message}`;
  switch (error.code) {
    case "credentials_refused":
      return `${gatewayName} did not accept these credentials. Check them in your ${gatewayName} account and try again.`;
    case "missing_fields":
      return "Fill in every field.";
    case "payment_account_taken":
      return `This ${gatewayName} account is connected to another PixEcom seller. Each seller connects an account of their own.`;
    default:
      return error.message;
  }
}

/**
 * The connection a gateway's card shows: the active one if any (payments go there), else
 * the newest. Also the newest when it is a refused attempt made after the active one.
 */
function standing(gateway, connections) {
  const mine = connections.filter((c) => c.gateway === gateway.gateway);
  const active = mine.find((c) => c.status === "ACTIVE") ?? null;
  const latest = mine[0] ?? null;
  const shown = active ?? latest;
  const laterRefusal = active && latest && latest !== active && latest.status === "REFUSED" ? latest : null;
  return { shown, state: shown ? shown.status : "NONE", laterRefusal };
}

function facts(gateway, { shown, state, laterRefusal }) {
  const name = gateway.display_name;
  switch (state) {
    case "ACTIVE":
      return [
        h("p", { "data-testid": "connected-account" }, `Payments go to ${accountName(shown)}, connected since ${moment(shown.connected_at)}.`),
        laterRefusal ? h("p", { class: "note" }, `Your last attempt to connect another account was refused: ${laterRefusal.refusal ?? "no reason given"}.`) : null,
      ];
    case "REVOKED":
      return h(
        "p",
        { class: "call", "data-testid": "revoked" },
        `PixEcom's access to ${accountName(shown)} was revoked at ${name} on ${moment(shown.ended_at)}. Shoppers cannot pay with ${name} until you connect your account again.`,
      );
    case "REFUSED":
      return h("p", { "data-testid": "refusal" }, `Connecting was refused: ${shown.refusal ?? "no reason given"}. Connect again.`);
    case "DISCONNECTED":
      return h("p", {}, `You disconnected ${accountName(shown)} on ${moment(shown.ended_at)}. Shoppers cannot pay with ${name} until you connect an account.`);
    case "PENDING":
      return h("p", {}, `Connecting was started ${moment(shown.created_at)} and not finished. Shoppers cannot pay with ${name} until you connect an account.`);
    default:
      return h("p", {}, `Shoppers cannot pay with ${name} until you connect your ${name} account.`);
  }
}

/** The form of a credentials gateway: one input per declared field, secrets masked. */
function credentialsForm(gateway, connect) {
  const inputs = gateway.credential_fields.map((field) => {
    const id = `credential-${gateway.gateway}-${field.name}`;
    const input = h("input", {
      id,
      name: field.name,
      type: field.secret ? "password" : "text",
      // Never offered back by the browser's autofill: it is not the seller's PixEcom login.
      autocomplete: field.secret ? "new-password" : "off",
      spellcheck: "false",
      required: true,
      "data-secret": field.secret ? "true" : null,
    });
    return { field, input, row: h("div", { class: "field" }, h("label", { for: id }, field.label), input) };
  });
  const submit = h("button", { type: "submit", class: "button" }, `Connect ${gateway.display_name}`);
  const form = h(
    "form",
    {
      class: "credentials-form",
      "data-testid": `credentials-${gateway.gateway}`,
      onsubmit: async (event) => {
        event.preventDefault();
        const credentials = Object.fromEntries(inputs.map(({ field, input }) => [field.name, input.value]));
        // What was typed into a secret field is not kept on the page, whatever the answer.
        for (const { field, input } of inputs) if (field.secret) input.value = "";
        await connect(submit, { gateway: gateway.gateway, credentials });
      },
    },
    inputs.map(({ row }) => row),
    h("div", { class: "actions" }, submit),
  );
  return form;
}

function gatewayCard(gateway, connections, actions) {
  const current = standing(gateway, connections);
  const { shown, state } = current;
  const [label, tone] = STATES[state] ?? [state, "muted"];
  const headingId = `gateway-${gateway.gateway}-heading`;
  const problem = inlineAlert(`problem-${gateway.gateway}`);
  const controls = [];
  if (state === "ACTIVE") {
    controls.push(
      h(
        "button",
        { type: "button", class: "button secondary", "aria-label": `Disconnect ${gateway.display_name}`, onclick: (event) => actions.disconnect(gateway, shown, event.currentTarget, problem) },
        "Disconnect",
      ),
    );
  } else if (gateway.kind === "oauth") {
    const text = state === "REVOKED" || state === "DISCONNECTED" ? `Reconnect ${gateway.display_name}` : `Connect ${gateway.display_name}`;
    controls.push(h("button", { type: "button", class: "button", onclick: (event) => actions.connect(event.currentTarget, { gateway: gateway.gateway }, problem, gateway) }, text));
  } else {
    controls.push(credentialsForm(gateway, (button, body) => actions.connect(button, body, problem, gateway)));
  }
  return h(
    "section",
    { class: "gateway", "aria-labelledby": headingId, "data-gateway": gateway.gateway, "data-testid": "gateway" },
    h("h2", { id: headingId }, gateway.display_name, " ", h("span", { class: `badge ${tone}`, "data-state": state, "data-testid": "gateway-state" }, label)),
    facts(gateway, current),
    gateway.kind === "oauth" && state !== "ACTIVE" ? h("p", { class: "note" }, `You approve access on ${gateway.display_name}'s own page and come back here.`) : null,
    problem,
    state === "ACTIVE" ? h("div", { class: "actions" }, controls) : controls,
  );
}

/** What `?connection=` / `?error=` came back with, as a sentence and its tone. */
function outcomeOf(params, connections, gateways) {
  const error = params.get("error");
  if (error !== null) return { text: CALLBACK_ERRORS[error] ?? "Connecting did not work. Connect again.", tone: "bad" };
  const id = params.get("connection");
  if (id === null) return null;
  const connection = CONNECTION_ID.test(id) ? connections.find((c) => c.id === id) : null;
  if (!connection) return { text: "This link names no connection of your account. Connect again.", tone: "bad" };
  const name = gateways.get(connection.gateway) ?? connection.gateway;
  if (connection.status === "ACTIVE") return { text: `Connected ${name}: payments now go to ${accountName(connection)}.`, tone: "ok" };
  if (connection.status === "REFUSED") return { text: `Connecting ${name} was refused: ${connection.refusal ?? "no reason given"}.`, tone: "bad" };
  return { text: `This ${name} connection is not active. Connect again.`, tone: "bad" };
}

/** The Payments page; with `?connection=<id>` or `?error=<code>`, what the trip ended in. */
export async function paymentsView(context, params) {
  const [gateways, connections] = await Promise.all([get("/payments/gateways"), get("/payments/connections")]);
  const names = new Map(gateways.map((g) => [g.gateway, g.display_name]));
  const outcome = outcomeOf(params, connections, names);
  // The live regions are on the page, empty, before their text arrives (announce()).
  const outcomeOk = h("p", { class: "notice", role: "status", "data-testid": "payments-outcome", hidden: true });
  const outcomeBad = h("p", { class: "inline-alert", role: "alert", "data-testid": "payments-outcome-problem", hidden: true });
  if (outcome) announce(outcome.tone === "ok" ? outcomeOk : outcomeBad, outcome.text);
  // Said once: a reload or a Back does not repeat it. replaceState fires no hashchange,
  // so the page is not rendered again; the shell reads the cleaned address when done.
  if (params.has("connection") || params.has("error")) history.replaceState(history.state, "", "#/payments");

  const holder = h("div", { class: "gateways", "data-testid": "payment-gateways" });
  const noticeLine = h("p", { class: "notice", role: "status", "data-testid": "payments-notice", hidden: true });

  async function refresh() {
    const fresh = await get("/payments/connections");
    if (holder.isConnected) show(fresh);
  }

  const actions = {
    connect: async (button, body, problem, gateway) => {
      button.disabled = true;
      say(problem, "");
      say(noticeLine, "");
      try {
        // "same-origin": the answer sets the cookie that binds the consent flow to this
        // browser (the API's callback refuses a flow finished in another one).
        const started = await request("/payments/connections", { method: "POST", body, credentials: "same-origin" });
        if (started.authorization_url) {
          location.assign(started.authorization_url);
          return;
        }
        notice = `Connected ${gateway.display_name}: payments now go to ${accountName(started)}.`;
        await refresh();
      } catch (error) {
        say(problem, `Could not connect ${gateway.display_name}: ${problemText(error, gateway.display_name)}`);
        button.disabled = false;
      }
    },
    disconnect: async (gateway, connection, button, problem) => {
      const name = gateway.display_name;
      const question = `Disconnect ${accountName(connection)} from ${name}? Shoppers cannot pay with ${name} until you connect an account again, and refunds of its payments need it connected.`;
      if (!window.confirm(question)) return;
      button.disabled = true;
      say(problem, "");
      say(noticeLine, "");
      try {
        await request(`/payments/connections/${connection.id}`, { method: "DELETE" });
        notice = `Disconnected ${accountName(connection)} from ${name}.`;
        await refresh();
      } catch (error) {
        say(problem, `Could not disconnect ${name}: ${problemText(error, name)}`);
        button.disabled = false;
      }
    },
  };

  function show(list) {
    if (notice) announce(noticeLine, notice);
    notice = "";
    replace(
      holder,
      gateways.length
        ? gateways.map((gateway) => gatewayCard(gateway, list, actions))
        : h("p", { class: "note", "data-testid": "no-gateways" }, "No installed payment gateway takes payments into sellers' own accounts, so there is nothing to connect."),
    );
  }

  show(connections);
  return [
    h("h1", {}, "Payments"),
    outcomeOk,
    outcomeBad,
    h("p", { class: "note" }, "Shoppers' payments go to your own gateway accounts. Connect at least one before publishing a sellpage."),
    noticeLine,
    holder,
  ];
}
