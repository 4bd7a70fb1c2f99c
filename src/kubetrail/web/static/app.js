// kubetrail UI: draws the charts whose data the server embedded as JSON, and shows the
// custom from/to fields of the time picker. No data is fetched from anywhere else.
"use strict";

function drawChart(el) {
  const source = document.getElementById(el.dataset.chart);
  if (!source || typeof Plotly === "undefined") return;
  const spec = JSON.parse(source.textContent);
  if (!spec) return;
  let traces;
  if (spec.kind === "timeseries") {
    traces = Object.entries(spec.series).map(([name, ys]) => ({
      type: "bar", name: name, x: spec.x, y: ys,
    }));
  } else {
    traces = [{ type: "bar", name: spec.name, x: spec.x, y: spec.y }];
  }
  const layout = {
    barmode: "stack", margin: { l: 40, r: 10, t: 10, b: 40 }, height: el.classList.contains("small") ? 140 : 260,
    legend: { orientation: "h" }, xaxis: { automargin: true }, yaxis: { automargin: true },
  };
  Plotly.newPlot(el, traces, layout, { displayModeBar: false, responsive: true });
  if (spec.link) {
    el.on("plotly_click", (ev) => {
      const point = ev.points && ev.points[0];
      if (point) window.location.href = bucketSearch(spec.link, point.x, point.data.name);
    });
  }
  el.dataset.drawn = "1";
}

// A query-language value that matches exactly `text` (as kubetrail.web.queries.quote).
function quote(text) {
  return '"' + String(text).replace(/[\\"*]/g, (c) => "\\" + c) + '"';
}

// The search of one time bucket (and series) of a chart: every bar leads to its requests.
function bucketSearch(link, x, series) {
  const start = new Date(String(x).replace(/\.\d+/, "").replace(" ", "T").replace(/Z?$/, "Z"));
  const end = new Date(start.getTime() + link.span * 1000);
  const iso = (d) => d.toISOString().replace(/\.\d+Z$/, "Z");
  let q = link.base || "";
  if (link.field && series !== undefined) q = (q + " " + link.field + "=" + quote(series)).trim();
  const params = new URLSearchParams({ q: q, range: "custom", from: iso(start), to: iso(end) });
  if (link.cluster) params.set("cluster", link.cluster);
  return "/ui/search?" + params.toString();
}

function customRange() {
  const range = document.getElementById("range");
  if (!range) return;
  const show = () => document.querySelectorAll(".picker .custom").forEach((label) => {
    label.style.display = range.value === "custom" ? "" : "none";
  });
  range.addEventListener("change", show);
  show();
}

window.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-chart]").forEach(drawChart);
  customRange();
  const q = document.getElementById("q");
  if (q) {
    q.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && !ev.shiftKey) { ev.preventDefault(); q.form.submit(); }
    });
  }
});
