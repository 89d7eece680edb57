/* Plotly charts drawn from figures built on the server (analytics/figures.py).
 *
 * Each chart is an element with data-chart="<id>" next to a json_script island <script id="<id>"> holding
 * {"data": [...], "layout": {...}}. This file only draws them:
 * 1. Colours written as CSS variables ("var(--danger)") are resolved against the stylesheet, so the same figure
 *    reads well in the light and the dark theme; when the system theme changes, the charts are drawn again.
 * 2. A click on a bar or point opens the URL in its customdata: the filtered list the point counts. Only
 *    same-site paths are followed.
 */
(function () {
  "use strict";

  var VAR = /^var\((--[\w-]+)\)$/;

  function resolveColors(value, styles) {
    if (typeof value === "string") {
      var match = VAR.exec(value);
      return match ? styles.getPropertyValue(match[1]).trim() || value : value;
    }
    if (Array.isArray(value)) {
      return value.map(function (item) { return resolveColors(item, styles); });
    }
    if (value && typeof value === "object") {
      var copy = {};
      Object.keys(value).forEach(function (key) { copy[key] = resolveColors(value[key], styles); });
      return copy;
    }
    return value;
  }

  function isSitePath(url) {
    return typeof url === "string" && url.charAt(0) === "/" && url.charAt(1) !== "/" && url.charAt(1) !== "\\";
  }

  function draw(element) {
    var island = document.getElementById(element.getAttribute("data-chart"));
    if (!island) return;
    var figure = resolveColors(JSON.parse(island.textContent), getComputedStyle(document.documentElement));
    window.Plotly.react(element, figure.data, figure.layout, {
      responsive: true,
      displaylogo: false,
      modeBarButtonsToRemove: ["select2d", "lasso2d"],
    });
    if (!element.getAttribute("data-chart-ready")) {
      element.setAttribute("data-chart-ready", "true");
      element.on("plotly_click", function (event) {
        var point = event && event.points && event.points[0];
        var url = point && point.customdata;
        if (isSitePath(url)) window.location.assign(url);
      });
    }
  }

  function drawAll() {
    if (!window.Plotly) return;
    document.querySelectorAll("[data-chart]").forEach(draw);
  }

  document.addEventListener("DOMContentLoaded", function () {
    drawAll();
    var scheme = window.matchMedia ? window.matchMedia("(prefers-color-scheme: dark)") : null;
    if (scheme && scheme.addEventListener) scheme.addEventListener("change", drawAll);
  });
})();
