// The storage dashboard's charts (templates/storage_cost/*.html): size per storage class, the trend (size per class,
// stacked, with the month cost on its own axis) and views and downloads per month. The data is read from
// <script type="application/json"> blocks, or for the trend from its canvas's data-series attribute (htmx
// drops <script> elements from what it swaps in); every figure is also in the table under its chart.
(function () {
  "use strict";

  if (window.healthcrmStorageCharts) {
    window.healthcrmStorageCharts.drawAll();
    return;
  }

  var COST_LINE = "#b42318";
  var VIEWS = "#0b6e75";
  var DOWNLOADS = "#8a5a00";

  function readJson(id) {
    var node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  }

  function sized(canvas, height) {
    // Chart.js sizes the canvas from its box: give the box a height (CSSOM, allowed by the CSP).
    canvas.parentElement.style.position = "relative";
    canvas.parentElement.style.height = height;
  }

  function base(extra) {
    var options = { responsive: true, maintainAspectRatio: false, animation: false };
    Object.keys(extra).forEach(function (key) { options[key] = extra[key]; });
    return options;
  }

  function drawClasses() {
    var canvas = document.getElementById("storage-class-chart");
    var data = readJson("storage-class-data");
    if (!canvas || !data || canvas.getAttribute("data-drawn")) { return; }
    sized(canvas, Math.max(120, 40 * data.labels.length + 40) + "px");
    new window.Chart(canvas, {
      type: "bar",
      data: { labels: data.labels, datasets: [{ label: data.unit + " stored", data: data.values, backgroundColor: data.colours }] },
      options: base({
        indexAxis: "y",
        plugins: {
          legend: { display: false },
          tooltip: { callbacks: { label: function (item) {
            return item.parsed.x + " " + data.unit + ", $" + data.usd[item.dataIndex] + " a month";
          } } }
        },
        scales: { x: { beginAtZero: true, title: { display: true, text: data.unit } } }
      })
    });
    canvas.setAttribute("data-drawn", "1");
  }

  function drawTrend() {
    var canvas = document.getElementById("storage-trend-chart");
    if (!canvas || canvas.getAttribute("data-drawn")) { return; }
    var data = JSON.parse(canvas.getAttribute("data-series"));
    sized(canvas, "260px");
    var datasets = data.classes.map(function (series) {
      return { label: series.label + " (" + data.unit + ")", data: series.values, borderColor: series.colour,
               backgroundColor: series.colour + "55", fill: true, pointRadius: 0, borderWidth: 1,
               stack: "gb", yAxisID: "y" };
    });
    datasets.push({ label: "Cost a month ($)", data: data.usd, borderColor: COST_LINE, borderDash: [5, 3],
                    fill: false, pointRadius: 0, borderWidth: 2, yAxisID: "cost" });
    new window.Chart(canvas, {
      type: "line",
      data: { labels: data.days, datasets: datasets },
      options: base({
        interaction: { mode: "index", intersect: false },
        plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } } },
        scales: {
          x: { ticks: { maxTicksLimit: 6 } },
          y: { stacked: true, beginAtZero: true, title: { display: true, text: data.unit } },
          cost: { position: "right", beginAtZero: true, grid: { drawOnChartArea: false },
                  title: { display: true, text: "$ a month" } }
        }
      })
    });
    canvas.setAttribute("data-drawn", "1");
  }

  function drawMonths() {
    var canvas = document.getElementById("storage-month-chart");
    var data = readJson("storage-month-data");
    if (!canvas || !data || canvas.getAttribute("data-drawn")) { return; }
    sized(canvas, "220px");
    new window.Chart(canvas, {
      type: "bar",
      data: { labels: data.months, datasets: [
        { label: "Views", data: data.views, backgroundColor: VIEWS },
        { label: "Downloads", data: data.downloads, backgroundColor: DOWNLOADS }
      ] },
      options: base({
        plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } } },
        scales: { x: { ticks: { maxTicksLimit: 12 } }, y: { beginAtZero: true, ticks: { precision: 0 } } }
      })
    });
    canvas.setAttribute("data-drawn", "1");
  }

  function drawAll() {
    if (!window.Chart) { return; }
    drawClasses();
    drawTrend();
    drawMonths();
  }

  window.healthcrmStorageCharts = { drawAll: drawAll };
  // The trend's span switch swaps its block in with htmx: draw what came in.
  document.addEventListener("htmx:afterSettle", drawAll);
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", drawAll);
  } else {
    drawAll();
  }
})();
