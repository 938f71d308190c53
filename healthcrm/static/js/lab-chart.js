// Lab trend charts: a line chart per test named in the JSON of #lab-series (the flowsheet opens one).
// The reference range is a shaded band between two dashed lines; each point's shape and colour follow its
// flag, and the table beside each chart lists every value, so nothing depends on colour or on this script.
(function () {
  "use strict";

  // Loaded again (share.js does after a swap): the first copy draws, and listens already.
  if (window.healthcrmLabCharts) {
    window.healthcrmLabCharts.drawAll();
    return;
  }

  var CHART_HEIGHT = "220px";
  var DAY_MS = 24 * 60 * 60 * 1000;
  // Over half a year, ticks are at least six weeks apart: month and year say enough. Closer, the day.
  var MONTHS_FROM_MS = 180 * DAY_MS;
  var LINE = "#0b6e75";
  var RANGE_LINE = "#7a8b99";
  var RANGE_FILL = "rgba(19, 115, 51, 0.08)";
  var FLAGS = {
    H: { label: "High", colour: "#b42318", shape: "triangle" },
    L: { label: "Low", colour: "#8a5a00", shape: "rectRot" },
    N: { label: "Normal", colour: LINE, shape: "circle" }
  };
  var NO_FLAG = { label: "", colour: LINE, shape: "circle" };

  function flagOf(point) {
    return FLAGS[point.flag] || NO_FLAG;
  }

  function rangeLine(points, key, label) {
    return {
      label: label,
      data: points.map(function (p) { return { x: p.t, y: p[key] }; }),
      borderColor: RANGE_LINE,
      borderDash: [5, 4],
      borderWidth: 1,
      pointRadius: 0,
      pointHitRadius: 0,
      stepped: "middle",
      fill: false,
      spanGaps: false
    };
  }

  function drawChart(test, canvas, zone, formatTime) {
    var points = test.points;
    var first = points[0].t;
    var last = points[points.length - 1].t;
    var padding = Math.max((last - first) * 0.04, DAY_MS);
    var formatTick = new Intl.DateTimeFormat(undefined, last - first > MONTHS_FROM_MS
      ? { timeZone: zone, month: "short", year: "numeric" }
      : { timeZone: zone, day: "numeric", month: "short" });
    var hasLow = points.some(function (p) { return p.low !== null; });
    var hasHigh = points.some(function (p) { return p.high !== null; });
    var datasets = [];
    if (hasLow) {
      datasets.push(rangeLine(points, "low", "Reference low"));
    }
    if (hasHigh) {
      var high = rangeLine(points, "high", "Reference high");
      // Shade between the two lines; with only an upper limit, shade down to the axis.
      high.fill = hasLow ? "-1" : "start";
      high.backgroundColor = RANGE_FILL;
      datasets.push(high);
    }
    datasets.push({
      label: test.name + (test.unit ? " (" + test.unit + ")" : ""),
      data: points.map(function (p) { return { x: p.t, y: p.y }; }),
      borderColor: LINE,
      borderWidth: 2,
      tension: 0,
      pointRadius: 5,
      pointHoverRadius: 7,
      pointStyle: points.map(function (p) { return flagOf(p).shape; }),
      pointBackgroundColor: points.map(function (p) { return flagOf(p).colour; }),
      pointBorderColor: points.map(function (p) { return flagOf(p).colour; })
    });

    var valueIndex = datasets.length - 1;
    return new window.Chart(canvas, {
      type: "line",
      data: { datasets: datasets },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        parsing: true,
        interaction: { mode: "nearest", intersect: false, axis: "x" },
        scales: {
          x: {
            type: "linear",
            min: first - padding,
            max: last + padding,
            ticks: {
              maxTicksLimit: 5,
              includeBounds: false,
              callback: function (value) { return formatTick.format(new Date(value)); }
            }
          },
          y: {
            grace: "10%",
            // Lab values are never negative: the grace padding must not push the axis below zero.
            afterDataLimits: function (scale) { if (scale.min < 0) { scale.min = 0; } },
            title: { display: Boolean(test.unit), text: test.unit }
          }
        },
        plugins: {
          legend: { display: false },
          tooltip: {
            filter: function (item) { return item.datasetIndex === valueIndex; },
            callbacks: {
              title: function (items) {
                return items.length ? formatTime.format(new Date(items[0].parsed.x)) : "";
              },
              label: function (item) {
                var point = points[item.dataIndex];
                var text = point.y + (test.unit ? " " + test.unit : "");
                var flag = flagOf(point).label;
                return flag ? text + " (" + flag + ")" : text;
              }
            }
          }
        }
      }
    });
  }

  function drawAll() {
    var source = document.getElementById("lab-series");
    if (!source || !window.Chart) {
      return;
    }
    var data = JSON.parse(source.textContent);
    var zone = data.timezone || "UTC";
    var formatTime = new Intl.DateTimeFormat(undefined, { timeZone: zone, dateStyle: "medium", timeStyle: "short" });
    data.tests.forEach(function (test) {
      var canvas = document.getElementById("lab-chart-" + test.canvas);
      if (!canvas || canvas.getAttribute("data-drawn")) {
        return;
      }
      // Chart.js sizes the canvas from its box: give the box a height and room (CSSOM, allowed by the CSP).
      canvas.parentElement.style.position = "relative";
      canvas.parentElement.style.height = CHART_HEIGHT;
      drawChart(test, canvas, zone, formatTime);
      canvas.setAttribute("data-drawn", "1");
    });
  }

  window.healthcrmLabCharts = { drawAll: drawAll };
  // The labs flowsheet opens a test's chart by swapping its block in with htmx: draw what came in.
  document.addEventListener("htmx:afterSettle", drawAll);

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", drawAll);
  } else {
    drawAll();
  }
})();
