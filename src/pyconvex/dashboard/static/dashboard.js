// The dashboard's own script: sign-in links, live regions, local times, Health charts.
// Pages work without it (forms post, links load); this makes them live and smoother.
(function () {
  "use strict";

  // `pyconvex dev` prints /dashboard/login#key=...: the key stays out of server logs. It is
  // taken out of the address bar on every page (a signed-in user is sent on to Health,
  // and a browser keeps the fragment across that redirect).
  function signInFromLink(root) {
    if (location.hash.indexOf("#key=") !== 0) return;
    var key = location.hash.slice(5);
    history.replaceState(null, "", location.pathname + location.search);
    var form = root.querySelector && root.querySelector("#signin");
    if (!form) return;
    try { key = decodeURIComponent(key); } catch (e) { /* a key with a bare % */ }
    form.querySelector("#key").value = key;
    form.submit();
  }

  // A poll answered by the sign-in page means the session ended: show that page whole.
  function signedOut(response) {
    if (response.redirected) { location.reload(); return true; }
    return false;
  }

  function localTimes(root) {
    root.querySelectorAll("time[data-epoch]").forEach(function (el) {
      var when = new Date(parseFloat(el.dataset.epoch) * 1000);
      el.textContent = when.toLocaleString();
      el.setAttribute("datetime", when.toISOString());
    });
  }

  // A [data-live] region is fetched again every second and replaced when it changed.
  function live(el) {
    if (el.dataset.polling) return;
    el.dataset.polling = "1";
    var last = null;
    var busy = false;  // one request at a time, so answers are never painted out of order
    var timer = setInterval(function () {
      if (!document.body.contains(el)) { clearInterval(timer); return; }
      if (busy || document.hidden) return;
      busy = true;
      fetch(el.dataset.live, { credentials: "same-origin", headers: { "HX-Request": "true" } })
        .then(function (r) { return r.ok && !signedOut(r) ? r.text() : null; })
        .then(function (html) {
          if (html === null || html === last) return;
          last = html;
          el.innerHTML = html;
          htmx.process(el);
          localTimes(el);
        })
        .catch(function () {})
        .finally(function () { busy = false; });
    }, 1000);
  }

  var COLORS = ["#2563eb", "#db2777", "#059669", "#d97706"];

  function healthCharts(root) {
    var box = root.querySelector && root.querySelector("[data-health]");
    if (!box || box.dataset.polling || typeof uPlot === "undefined") return;
    box.dataset.polling = "1";
    var charts = [];
    box.querySelectorAll(".chart").forEach(function (el) {
      var names = el.dataset.series.split(" ");
      var series = [{}].concat(names.map(function (name, i) {
        return { label: name.replace(/_/g, " "), stroke: COLORS[i % COLORS.length], width: 2 };
      }));
      var width = Math.max(280, el.clientWidth || 600);
      var plot = new uPlot({ width: width, height: 180, series: series, axes: [{}, {}] },
        [[]].concat(names.map(function () { return []; })), el);
      charts.push({ el: el, names: names, plot: plot });
    });
    function table(functions) {
      var body = document.querySelector("#function-health tbody");
      if (!body) return;
      body.textContent = "";
      functions.forEach(function (f) {
        var row = body.insertRow();
        [f.name, f.kind, f.calls, f.errors, f.p50_ms.toFixed(1), f.p95_ms.toFixed(1),
         f.p99_ms.toFixed(1)].forEach(function (value, i) {
          var cell = row.insertCell();
          cell.textContent = String(value);
          if (i > 1) cell.className = "num";
        });
      });
    }
    var busy = false;
    function refresh() {
      if (!document.body.contains(box)) return false;
      if (busy || document.hidden) return true;
      busy = true;
      fetch(box.dataset.health, { credentials: "same-origin" })
        .then(function (r) { return signedOut(r) ? null : r.json(); })
        .then(function (health) {
          if (health === null) return;
          charts.forEach(function (c) {
            c.plot.setData([health.series.t].concat(c.names.map(function (n) { return health.series[n]; })));
          });
          if (health.functions.length) table(health.functions);
        })
        .catch(function () {})
        .finally(function () { busy = false; });
      return true;
    }
    refresh();
    var timer = setInterval(function () { if (!refresh()) clearInterval(timer); }, 1000);
  }

  function setUp(root) {
    signInFromLink(root);
    localTimes(root);
    if (root.querySelectorAll) root.querySelectorAll("[data-live]").forEach(live);
    healthCharts(root);
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (typeof htmx !== "undefined") htmx.onLoad(setUp); else setUp(document);
  });
})();
