"use strict";
// The sellpage's checkout: posts the form to the storefront's order route (same origin)
// and shows what the API answers. The page's HTML is the same for every query string, so
// the address the shopper landed on (UTM parameters, fbclid, the ad's ids) is read here.
(function () {
  // Meta's click id as its pixel keeps it ("fbp and fbc Parameters": the _fbc cookie is
  // fb.<subdomainIndex>.<creationTime in ms>.<fbclid>, the click id unmodified, case
  // sensitive; 1 as subdomainIndex, kept 90 days), for the Conversions API to match the
  // purchase to the click. Written when absent, and replaced when the shopper arrives from
  // another ad (the newest click is the one the purchase follows); an fbclid outside
  // checkout's alphabet would only be dropped there, so none is written.
  const CLICK_ID = /^[A-Za-z0-9_-]{1,500}$/;
  const FBC_MAX_AGE_SECONDS = 90 * 24 * 60 * 60;

  function cookie(name) {
    const prefix = name + "=";
    const found = document.cookie.split("; ").find((part) => part.startsWith(prefix));
    // As stored: Meta's values are sent unmodified, never decoded.
    return found ? found.slice(prefix.length) : null;
  }

  function rememberClick() {
    const clickId = new URLSearchParams(location.search).get("fbclid");
    if (!clickId || !CLICK_ID.test(clickId)) {
      return;
    }
    const kept = cookie("_fbc");
    if (kept && kept.split(".").slice(3).join(".") === clickId) {
      return;
    }
    document.cookie =
      "_fbc=fb.1." + Date.now() + "." + clickId + "; Path=/; Max-Age=" + FBC_MAX_AGE_SECONDS +
      "; SameSite=Lax" + (location.protocol === "https:" ? "; Secure" : "");
  }

  rememberClick();
  const form = document.getElementById("checkout");
  if (!form) {
    return;
  }
  const status = document.getElementById("checkout-status");
  const button = form.querySelector("button[type=submit]");
  const fields = form.elements;
  // Absolute: it is also the Conversions API's event_source_url, which must be.
  const landing = location.origin + location.pathname + location.search;
  const maxLanding = Number(form.dataset.maxLandingUrlLength);
  // A longer address would have the whole order refused: order without attribution.
  fields.namedItem("landing_url").value = landing.length <= maxLanding ? landing : "";
  // Shown until now, for browsers that do not run scripts (not <noscript>: a browser
  // with scripts switched off by policy may still parse it as script-enabled).
  document.getElementById("script-needed").remove();
  button.disabled = false;

  function say(text, kind) {
    const line = document.createElement("p");
    line.textContent = text;
    if (kind) {
      line.className = kind;
    }
    status.replaceChildren(line);
    return line;
  }

  function refusesLandingUrl(body) {
    const details = (body && body.error && body.error.details) || [];
    return details.some((detail) => (detail.location || []).includes("landing_url"));
  }

  async function place(order) {
    const answer = await fetch(form.dataset.orderPath, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(order),
      // The _fbp/_fbc cookies go along (same origin); nothing else here reads cookies.
      credentials: "same-origin",
    });
    let body = null;
    try {
      body = await answer.json();
    } catch (_) {
      body = null;
    }
    return { status: answer.status, body: body };
  }

  // What a refused order tells the shopper: the API's messages are written for sellers
  // and developers, so the cases a shopper can act on get their own words.
  function refusal(answer) {
    const error = (answer.body && answer.body.error) || {};
    const details = error.details || [];
    if (details.some((detail) => (detail.location || []).includes("customer_email"))) {
      return "We could not place your order: please check your email address.";
    }
    if (error.code === "payment_connection_required") {
      return "We could not place your order: this payment method is not available here. Please choose another.";
    }
    if (answer.status === 429) {
      return "We could not place your order: too many attempts. Please wait a minute and try again.";
    }
    return "We could not place your order" + (error.message ? ": " + error.message : ". Please try again.");
  }

  function payLink(url) {
    try {
      const parsed = new URL(url, location.href);
      return parsed.protocol === "https:" || parsed.protocol === "http:" ? parsed.href : null;
    } catch (_) {
      return null;
    }
  }

  // The result page the gateway sends the shopper back to cannot learn the order id
  // from its address (PayPal adds its own token): it reads it from this tab's storage.
  function keep(orderId) {
    try {
      sessionStorage.setItem(form.dataset.orderKey, orderId);
    } catch (_) {
      // Storage off: the result page still thanks the shopper, without the order number.
    }
  }

  function showOrder(order) {
    const line = say("Thank you! Your order is placed. Order number: ");
    const number = document.createElement("span");
    number.dataset.testid = "order-id";
    number.textContent = order.order_id;
    line.append(number);
    const link = payLink(order.approval_url);
    if (link) {
      const next = document.createElement("p");
      const anchor = document.createElement("a");
      anchor.href = link;
      anchor.textContent = "Continue to payment";
      next.append(anchor);
      status.append(next);
      anchor.focus();
    } else {
      const next = document.createElement("p");
      next.textContent = "Your order is waiting for payment.";
      status.append(next);
    }
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    if (!form.checkValidity()) {
      form.reportValidity();
      return;
    }
    button.disabled = true;
    say("Placing your order…");
    const order = {
      gateway: fields.namedItem("gateway").value,
      customer_email: fields.namedItem("customer_email").value.trim(),
      quantity: Number(fields.namedItem("quantity").value),
      return_url: location.origin + form.dataset.thanksPath,
      cancel_url: location.origin + form.dataset.cancelPath,
    };
    // Also in the body, for a storefront on another origin than the API's; a value longer
    // than checkout takes (another script's cookie) would cost the order, so it stays out.
    ["fbp", "fbc"].forEach((name) => {
      const value = cookie("_" + name);
      if (value && value.length <= 600) {
        order[name] = value;
      }
    });
    const landingUrl = fields.namedItem("landing_url").value;
    try {
      let answer = await place(landingUrl ? Object.assign({ landing_url: landingUrl }, order) : order);
      if (answer.status === 422 && landingUrl && refusesLandingUrl(answer.body)) {
        // An ad's malformed parameter must not cost the sale: order without attribution.
        answer = await place(order);
      }
      if (answer.status === 201 && answer.body) {
        keep(answer.body.order_id);
        showOrder(answer.body);
        form.querySelectorAll("input, button").forEach((control) => {
          control.disabled = true;
        });
        return;
      }
      say(refusal(answer), "error");
    } catch (_) {
      say("We could not reach the shop. Check your connection and try again.", "error");
    }
    button.disabled = false;
  });
})();
