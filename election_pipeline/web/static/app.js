// The triage page's only script: live updates by polling (no library, nothing fetched from
// elsewhere). Every few seconds it asks /live for the data version; when it changed, it
// fetches this page again and swaps in the regions marked data-live (never the forms).
(function () {
  "use strict";
  var body = document.body;
  var version = body.getAttribute("data-version");
  if (!version) return;
  var every = parseInt(body.getAttribute("data-poll"), 10) || 3000;
  var status = document.getElementById("live-status");
  var updated = ""; // the time of the last swap, kept on the status until the next one

  function say(text) {
    if (status) status.textContent = text;
  }

  function live() {
    return updated ? "live · updated " + updated : "live";
  }

  function refresh() {
    return fetch(window.location.href, { credentials: "same-origin", cache: "no-store" }).then(function (r) {
      if (!r.ok) return false;
      return r.text().then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var regions = document.querySelectorAll("[data-live]");
        for (var i = 0; i < regions.length; i++) {
          var fresh = regions[i].id ? doc.getElementById(regions[i].id) : null;
          if (fresh) regions[i].replaceWith(document.importNode(fresh, true));
        }
        var next = doc.body.getAttribute("data-version");
        if (next) body.setAttribute("data-version", next);
        return true;
      });
    });
  }

  function tick() {
    fetch("/live", { credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } })
      .then(function (r) {
        if (r.status === 401) {
          say("signed out");
          return null;
        }
        if (!r.ok) throw new Error("status " + r.status);
        return r.json();
      })
      .then(function (answer) {
        if (answer === null) return "stop";
        if (answer.version !== version) {
          var seen = answer.version;
          return refresh().then(function (done) {
            if (done) {
              version = seen;
              updated = new Date().toLocaleTimeString();
            }
            say(live());
          });
        }
        say(live());
      })
      .catch(function () {
        say("live · server unreachable, retrying");
      })
      .then(function (outcome) {
        if (outcome !== "stop") window.setTimeout(tick, every);
      });
  }

  say(live());
  window.setTimeout(tick, every);
})();
