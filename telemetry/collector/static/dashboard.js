// The collector dashboard's page: reads the filters, fetches every panel's table from
// /dashboard/api/panels/NAME and draws it with Chart.js (vendored in this folder).
"use strict";

const PALETTE = ["#2b6cb0", "#dd6b20", "#38a169", "#d53f8c", "#805ad5", "#d69e2e",
  "#319795", "#e53e3e", "#4a5568", "#90cdf4", "#9ae6b4", "#fbb6ce"];
const MAX_SERIES = 8;
let generation = 0;

function $(id) { return document.getElementById(id); }

function query() {
  const params = new URLSearchParams();
  for (const id of ["project", "from", "to", "version", "os"]) {
    const value = $(id).value;
    if (value) params.set(id, value);
  }
  return params;
}

function fillSelect(select, values, keep, allLabel) {
  const previous = keep !== undefined ? keep : select.value;
  select.textContent = "";
  if (allLabel) select.append(new Option(allLabel, ""));
  for (const value of values) select.append(new Option(value, value));
  if ([...select.options].some((o) => o.value === previous)) select.value = previous;
}

async function getJSON(url) {
  const response = await fetch(url, { credentials: "same-origin" });
  if (response.status === 401) { window.location.assign("/dashboard/login"); throw new Error("401"); }
  if (!response.ok) throw new Error(`${url}: ${response.status}`);
  return response.json();
}

async function loadOptions(initial) {
  const project = initial.get("project") || $("project").value;
  const options = await getJSON("/dashboard/api/options" + (project ? "?project=" + encodeURIComponent(project) : ""));
  fillSelect($("project"), options.projects, project || options.projects[0] || "");
  fillSelect($("version"), options.versions, initial.get("version") ?? undefined, "all");
  fillSelect($("os"), options.os_names, initial.get("os") ?? undefined, "all");
  if (!$("from").value) $("from").value = initial.get("from") || options.default_from[0];
  if (!$("to").value) $("to").value = initial.get("to") || options.default_to[0];
}

function destroy(name) {
  const chart = Chart.getChart("chart-" + name);
  if (chart) chart.destroy();
}

function baseOptions(extra) {
  return Object.assign({
    responsive: true, maintainAspectRatio: false, animation: false,
    plugins: { legend: { display: false } },
  }, extra || {});
}

function pivot(table) {
  // rows (x, series, value) -> labels and up to MAX_SERIES datasets (the rest as "other").
  const labels = [...new Set(table.rows.map((r) => r[0]))];
  const totals = new Map();
  for (const [, s, v] of table.rows) totals.set(s, (totals.get(s) || 0) + v);
  const ranked = [...totals.entries()].sort((a, b) => b[1] - a[1]).map((e) => e[0]);
  const kept = new Set(ranked.slice(0, MAX_SERIES));
  const series = ranked.slice(0, MAX_SERIES);
  if (ranked.length > MAX_SERIES) series.push("other");
  const index = new Map(labels.map((l, i) => [l, i]));
  const data = new Map(series.map((s) => [s, new Array(labels.length).fill(0)]));
  for (const [x, s, v] of table.rows) data.get(kept.has(s) ? s : "other")[index.get(x)] += v;
  return {
    labels,
    datasets: series.map((s, i) => ({ label: s, data: data.get(s), backgroundColor: PALETTE[i % PALETTE.length], borderColor: PALETTE[i % PALETTE.length] })),
  };
}

function renderTable(name, table) {
  const box = $("table-" + name);
  box.textContent = "";
  if (!table.rows.length) return;
  const t = document.createElement("table");
  const head = t.createTHead().insertRow();
  for (const c of table.columns) { const th = document.createElement("th"); th.textContent = c.replaceAll("_", " "); head.append(th); }
  const body = t.createTBody();
  for (const row of table.rows) {
    const tr = body.insertRow();
    for (const v of row) {
      const td = tr.insertCell();
      td.textContent = v === null ? "" : String(v);
      if (typeof v === "number") td.className = "num";
    }
  }
  box.append(t);
}

function render(card, table) {
  const name = card.dataset.panel;
  const kind = card.dataset.chart;
  destroy(name);
  $("note-" + name).textContent = table.note || (table.rows.length ? "" : "No data for this range and filter.");
  if (kind === "table") { renderTable(name, table); return; }
  if (!table.rows.length) return;
  const canvas = $("chart-" + name);
  const col = (i) => table.rows.map((r) => r[i]);
  let config;
  if (kind === "line" || kind === "bar") {
    config = { type: kind, data: { labels: col(0), datasets: [{ label: table.columns[1], data: col(1), borderColor: PALETTE[0], backgroundColor: kind === "bar" ? PALETTE[0] : "rgba(43,108,176,0.15)", fill: kind === "line", pointRadius: 2, tension: 0 }] },
      options: baseOptions({ scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } }) };
  } else if (kind === "stacked") {
    config = { type: "bar", data: pivot(table),
      options: baseOptions({ plugins: { legend: { display: true, position: "right", labels: { boxWidth: 10, font: { size: 11 } } } },
        scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } } }) };
  } else if (kind === "hbar") {
    const last = table.columns.length - 1;
    config = { type: "bar", data: { labels: col(0), datasets: [{ label: table.columns[last], data: col(last), backgroundColor: PALETTE[0] }] },
      options: baseOptions({ indexAxis: "y", scales: { x: { beginAtZero: true }, y: { ticks: { autoSkip: false } } } }) };
  } else if (kind === "doughnut") {
    config = { type: "doughnut", data: { labels: col(0), datasets: [{ data: col(1), backgroundColor: PALETTE }] },
      options: baseOptions({ plugins: { legend: { display: true, position: "right" } } }) };
  } else if (kind === "success") {
    config = { type: "bar", data: { labels: table.rows.map((r) => `${r[0]} / ${r[1]}`), datasets: [{ label: "success %", data: col(5), backgroundColor: table.rows.map((r) => (r[5] === null || r[5] >= 90 ? PALETTE[2] : r[5] >= 70 ? PALETTE[5] : PALETTE[7])) }] },
      options: baseOptions({ indexAxis: "y", scales: { x: { min: 0, max: 100 }, y: { ticks: { autoSkip: false, font: { size: 10 } } } } }) };
  } else if (kind === "funnel") {
    config = { type: "bar", data: { labels: table.rows.map((r) => `${r[0]} (${r[2] === null ? "-" : r[2] + "%"})`), datasets: [{ label: "workflows", data: col(1), backgroundColor: PALETTE.slice(0, 4) }] },
      options: baseOptions({ indexAxis: "y", scales: { x: { beginAtZero: true } } }) };
  }
  new Chart(canvas, config);
}

async function loadStatus() {
  const s = await getJSON("/dashboard/api/status");
  const until = s.summarised_until ? new Date(s.summarised_until).toISOString().replace("T", " ").slice(0, 19) + " UTC" : "nothing yet";
  return `Charts count events received until ${until}; the live view shows the newest.`;
}

async function loadAll() {
  const mine = ++generation;
  const params = query();
  history.replaceState(null, "", "?" + params.toString());
  const status = $("status");
  status.dataset.loaded = "0";
  status.textContent = "Loading…";
  const cards = [...document.querySelectorAll(".card")];
  let failed = 0;
  await Promise.all(cards.map(async (card) => {
    const name = card.dataset.panel;
    $("csv-" + name).href = `/dashboard/api/panels/${name}.csv?${params}`;
    try {
      const table = await getJSON(`/dashboard/api/panels/${name}?${params}`);
      if (mine === generation) render(card, table);
    } catch (error) {
      failed += 1;
      $("note-" + name).textContent = "Could not load this panel.";
    }
  }));
  if (mine !== generation) return;
  let text = failed ? `${failed} panel(s) could not be loaded. ` : "";
  try { text += await loadStatus(); } catch (error) { /* the panels said it */ }
  status.textContent = text;
  status.dataset.loaded = String(mine);
}

async function start() {
  const initial = new URLSearchParams(window.location.search);
  await loadOptions(initial);
  $("filters").addEventListener("submit", (event) => { event.preventDefault(); loadAll(); });
  $("project").addEventListener("change", async () => { await loadOptions(new URLSearchParams()); });
  await loadAll();
  setInterval(async () => {
    const live = document.querySelector('[data-panel="live"]');
    try { render(live, await getJSON(`/dashboard/api/panels/live?${query()}`)); } catch (error) { /* next time */ }
  }, 5000);
}

window.addEventListener("DOMContentLoaded", start);
