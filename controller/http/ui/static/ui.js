// modelreg dashboard: refresh the live part of a page in place (Apache-2.0).
// A page marks it with data-live="<url of the fragment>"; without this script the
// page is complete, only not refreshed.
(function () {
  "use strict";
  var INTERVAL_MS = 3000;

  function refresh(main) {
    var url = main.getAttribute("data-live");
    var target = document.getElementById("rollout-live");
    if (!url || !target) {
      return;
    }
    fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (reply) {
        if (reply.redirected || !reply.ok) {
          throw new Error("refresh answered " + reply.status);
        }
        return reply.text();
      })
      .then(function (html) {
        if (html !== target.getAttribute("data-last")) {
          target.innerHTML = html;
          target.setAttribute("data-last", html);
        }
        document.body.removeAttribute("data-stale");
      })
      .catch(function () {
        document.body.setAttribute("data-stale", "true");
      })
      .then(function () {
        window.setTimeout(function () { refresh(main); }, INTERVAL_MS);
      });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var main = document.querySelector("main[data-live]");
    if (main) {
      window.setTimeout(function () { refresh(main); }, INTERVAL_MS);
    }
  });
})();
