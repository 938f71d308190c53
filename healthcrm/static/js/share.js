// The provider's pages of a share link: lab charts after htmx brings in a tab.
(function () {
  "use strict";

  // lab-chart.js draws the charts once, when it runs; htmx swaps in the lab results tab later (and drops
  // any <script> in it). When a swap leaves charts undrawn, run lab-chart.js again: a script of this
  // origin, which the page's CSP allows.
  document.addEventListener("htmx:afterSettle", function () {
    var undrawn = document.querySelector("canvas[id^='lab-chart-']:not([data-drawn])");
    var loaded = document.querySelector("script[data-lab-chart]");
    if (!undrawn || !loaded || !window.Chart) {
      return;
    }
    var again = document.createElement("script");
    again.src = loaded.src;
    again.nonce = loaded.nonce;
    again.setAttribute("data-lab-chart-again", "");
    document.body.appendChild(again);
  });
})();
