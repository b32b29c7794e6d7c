(function () {
  "use strict";
  var regions = Array.prototype.slice.call(document.querySelectorAll("[data-live]"));
  if (!regions.length) { return; }
  var badge = document.getElementById("live-state");
  var pending = null, inflight = false;
  function refresh() {
    if (inflight) { pending = pending || setTimeout(function () { pending = null; refresh(); }, 300); return; }
    inflight = true;
    Promise.all(regions.map(function (region) {
      return fetch(region.getAttribute("data-live"), {headers: {"Accept": "text/html"}, cache: "no-store"})
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) { if (html !== null) { region.innerHTML = html; } });
    })).catch(function () {}).then(function () { inflight = false; });
  }
  function soon() { if (!pending) { pending = setTimeout(function () { pending = null; refresh(); }, 250); } }
  var poll = parseInt(document.body.getAttribute("data-poll") || "0", 10);
  if (poll > 0) { setInterval(refresh, poll); }
  if (window.EventSource && document.body.getAttribute("data-events") === "1") {
    var source = new EventSource("/events");
    source.addEventListener("change", soon);
    source.onopen = function () { if (badge) { badge.textContent = "live"; } };
    source.onerror = function () { if (badge) { badge.textContent = "reconnecting…"; } };
  } else if (poll <= 0) {
    setInterval(refresh, 3000);
  }
})();
