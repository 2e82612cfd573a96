/*
 * PixEcom's Meta sandbox: a stand-in for https://connect.facebook.net/en_US/fbevents.js,
 * served at the same path by the sandbox (see pixecom_meta_ads/sandbox_pixel.py).
 *
 * Like Meta's library it takes over the `fbq` queue stub that the pixel base code defines
 * (fbq.callMethod, fbq.queue), runs the calls queued so far and every later one, and
 * reports each tracked event with an image request to /tr/ ("Meta Pixel: Advanced",
 * "Install the Pixel using an IMG Tag": id, ev, cd[...]) — sent to the sandbox that served
 * this script, whose origin it reads from document.currentScript.src. It knows only
 * init, track, trackCustom, trackSingle and trackSingleCustom; other calls are ignored.
 */
(function (window, document) {
  "use strict";
  var fbq = window.fbq;
  if (!fbq) {
    // Meta's library needs the base code's stub too; it says so and does nothing
    if (window.console && window.console.error) {
      window.console.error(
        "Facebook Pixel Error: Pixel code is not installed correctly on this page"
      );
    }
    return;
  }
  if (fbq.callMethod) {
    return; // already running on this page (the library was loaded twice)
  }
  var script = document.currentScript;
  var origin = new URL(script && script.src ? script.src : "/", window.location.href).origin;
  var pixels = [];
  var PIXEL_ID = /^[0-9]{1,32}$/;

  function send(pixelId, eventName, data, options) {
    var query = new URLSearchParams();
    query.set("id", pixelId);
    query.set("ev", eventName);
    if (options && options.eventID !== undefined && options.eventID !== null) {
      query.set("eid", String(options.eventID));
    }
    query.set("dl", window.location.href);
    if (document.referrer) {
      query.set("rl", document.referrer);
    }
    query.set("ts", String(Date.now()));
    if (data && typeof data === "object") {
      Object.keys(data).forEach(function (key) {
        var value = data[key];
        var kind = typeof value;
        if (kind === "string" || kind === "number" || kind === "boolean") {
          query.set("cd[" + key + "]", String(value));
        }
      });
    }
    new Image().src = origin + "/tr/?" + query.toString();
  }

  function call(args) {
    var method = args[0];
    if (method === "init") {
      var pixelId = String(args[1]);
      if (PIXEL_ID.test(pixelId) && pixels.indexOf(pixelId) < 0) {
        pixels.push(pixelId);
      }
    } else if (method === "track" || method === "trackCustom") {
      pixels.forEach(function (pixelId) {
        send(pixelId, String(args[1]), args[2], args[3]);
      });
    } else if (method === "trackSingle" || method === "trackSingleCustom") {
      if (pixels.indexOf(String(args[1])) >= 0) {
        send(String(args[1]), String(args[2]), args[3], args[4]);
      }
    }
  }

  fbq.callMethod = function () {
    call(Array.prototype.slice.call(arguments));
  };
  fbq.loaded = true;
  var queued = fbq.queue || [];
  fbq.queue = [];
  queued.forEach(function (args) {
    call(Array.prototype.slice.call(args));
  });
})(window, document);
