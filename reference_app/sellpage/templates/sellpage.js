"use strict";
// The sellpage's checkout: posts the form to the storefront's order route (same origin)
// and shows what the API answers. The page's HTML is the same for every query string, so
// the address the shopper landed on (UTM parameters, fbclid, the ad's ids) is read here.
(function () {
  const form = document.getElementById("checkout");
  if (!form) {
    return;
  }
  const status = document.getElementById("checkout-status");
  const button = form.querySelector("button[type=submit]");
  const fields = form.elements;
  const landing = location.pathname + location.search;
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
      credentials: "omit",
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
    const here = location.origin + location.pathname;
    const order = {
      gateway: fields.namedItem("gateway").value,
      customer_email: fields.namedItem("customer_email").value.trim(),
      quantity: Number(fields.namedItem("quantity").value),
      return_url: here,
      cancel_url: here,
    };
    const landingUrl = fields.namedItem("landing_url").value;
    try {
      let answer = await place(landingUrl ? Object.assign({ landing_url: landingUrl }, order) : order);
      if (answer.status === 422 && landingUrl && refusesLandingUrl(answer.body)) {
        // An ad's malformed parameter must not cost the sale: order without attribution.
        answer = await place(order);
      }
      if (answer.status === 201 && answer.body) {
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
