"use strict";
// The pages the payment provider sends the shopper back to: thanks (the order's status,
// read again until the payment is confirmed) and cancelled. Their HTML is the same for
// every order: the order id is read from the address (?order=…) or, as the provider's
// return address cannot carry it, from this tab's storage, where the sellpage's checkout
// kept it before the shopper left for the payment page.
(function () {
  const result = document.getElementById("order-result");
  if (!result) {
    return;
  }
  const ORDER_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
  // What the shopper reads for each status; polling stops at any but PENDING.
  const SAID = {
    PENDING: "Waiting for the payment provider to confirm your payment…",
    PAID: "Payment received: your order is paid.",
    CONFIRMED: "Your order is confirmed.",
    SHIPPED: "Your order is paid and on its way.",
    DELIVERED: "Your order is paid and delivered.",
    CANCELLED: "This order was cancelled.",
    PARTIALLY_REFUNDED: "Part of this order was refunded.",
    REFUNDED: "This order was refunded.",
    UNDERPAID: "The seller is checking your payment.",
    NEEDS_REVIEW: "The seller is checking your payment.",
  };
  const FIRST_DELAY_MS = 1000;
  const LONGEST_DELAY_MS = 10000;
  const GIVE_UP_AFTER_MS = 15 * 60 * 1000;

  const scriptNeeded = document.getElementById("script-needed");
  if (scriptNeeded) {
    scriptNeeded.remove();
  }
  const params = new URLSearchParams(location.search);
  let orderId = (params.get("order") || "").toLowerCase();
  if (!ORDER_ID.test(orderId)) {
    orderId = null;
    try {
      const kept = sessionStorage.getItem(result.dataset.orderKey) || "";
      orderId = ORDER_ID.test(kept) ? kept : null;
    } catch (_) {
      orderId = null;
    }
    if (orderId) {
      // In the address from now on: a reload or a bookmark keeps naming the order.
      params.set("order", orderId);
      history.replaceState(null, "", location.pathname + "?" + params.toString());
    }
  }
  const status = document.getElementById("order-status");
  if (!orderId) {
    if (status) {
      status.textContent = "Thank you! The seller has your order once your payment arrives.";
    }
    return;
  }
  document.getElementById("order-number").textContent = orderId;
  document.getElementById("order-line").hidden = false;
  if (result.dataset.result !== "thanks" || !status) {
    return;
  }

  function say(text, state) {
    status.textContent = text;
    status.dataset.status = state;
  }

  // The seller's pixels (issue 17): each registered a function that reports the purchase
  // in the browser with the order id as event id, the id the server reports it with, so
  // the network counts it once. Once per order in this browser.
  function reportPurchase(order) {
    const reported = "pixecom-purchase-reported:" + orderId;
    try {
      if (localStorage.getItem(reported)) {
        return;
      }
      localStorage.setItem(reported, "1");
    } catch (_) {
      // storage refused: report anyway (the network de-duplicates by event id)
    }
    for (const report of window.pixecomPurchases || []) {
      try {
        report(orderId, Number(order.value), String(order.currency));
      } catch (_) {
        // one network's pixel failing never stops the page or the others
      }
    }
  }

  const statusUrl = result.dataset.ordersPath + orderId + "/status";
  const started = Date.now();
  let delay = FIRST_DELAY_MS;

  async function check() {
    let state = null;
    try {
      const answer = await fetch(statusUrl, {
        headers: { Accept: "application/json" },
        credentials: "omit",
        cache: "no-store",
      });
      if (answer.status === 404) {
        say("We could not find this order on this page.", "UNKNOWN");
        return;
      }
      if (answer.ok) {
        const order = await answer.json();
        state = order.status;
        if (state === "PAID") {
          reportPurchase(order);
        }
      }
    } catch (_) {
      state = null; // offline for a moment: ask again
    }
    if (state) {
      say(SAID[state] || "Your order's status: " + state, state);
      if (state !== "PENDING") {
        return;
      }
    }
    if (Date.now() - started > GIVE_UP_AFTER_MS) {
      say(
        "Your payment is not confirmed yet. The seller gets your order once it is; " +
          "reload this page to check again.",
        state || "UNKNOWN"
      );
      return;
    }
    delay = Math.min(delay * 1.5, LONGEST_DELAY_MS);
    setTimeout(check, delay);
  }

  say("Checking your payment…", "CHECKING");
  check();
})();
