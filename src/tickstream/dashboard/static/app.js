// tickstream dashboard: candles from /api/bars (the lake), live bars over /api/live (server-sent
// events from the bars topics), health from /api/health (the job's Prometheus metrics).
"use strict";

const LWC = window.LightweightCharts;
const HISTORY = 1000;       // closed bars loaded when a symbol is picked
const SPARK_POINTS = 60;    // health samples kept per sparkline (one a second)

const state = {
  symbol: null,
  resolution: "",           // "" = the stored bars, with live updates; else a roll-up

  candles: new Map(),       // time (s) -> bar message
  lastTime: null,
  closedUpTo: null,         // the latest closed candle's time: a forming bar at or before it is stale
  events: null,
  updates: 0,               // bars applied since the symbol was picked
  health: {},
};
window.tickstream = state;  // for the curious (and for the browser test)

const chart = LWC.createChart(document.getElementById("chart"), {
  autoSize: true,
  layout: { background: { color: "#0f1419" }, textColor: "#d1d4dc" },
  grid: { vertLines: { color: "#1c232b" }, horzLines: { color: "#1c232b" } },
  timeScale: { timeVisible: true, secondsVisible: true, barSpacing: 12, rightOffset: 6 },
  rightPriceScale: { scaleMargins: { top: 0.08, bottom: 0.25 } },
});
const candles = chart.addSeries(LWC.CandlestickSeries, {
  upColor: "#26a69a", downColor: "#ef5350", borderVisible: false,
  wickUpColor: "#26a69a", wickDownColor: "#ef5350",
});
const volume = chart.addSeries(LWC.HistogramSeries, {
  priceScaleId: "volume", priceFormat: { type: "volume" }, lastValueVisible: false,
});
chart.priceScale("volume").applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });
const vwap = chart.addSeries(LWC.LineSeries, {
  color: "#f0b90b", lineWidth: 1, priceLineVisible: false, lastValueVisible: false, title: "VWAP",
});

function t(bar) { return Math.floor(bar.window_start_ms / 1000); }
function candle(bar) { return { time: t(bar), open: bar.open, high: bar.high, low: bar.low, close: bar.close }; }
function vol(bar) { return { time: t(bar), value: bar.volume, color: bar.close >= bar.open ? "#26a69a66" : "#ef535066" }; }
function line(bar) { return bar.vwap == null ? { time: t(bar) } : { time: t(bar), value: bar.vwap }; }

function redraw() {
  const bars = [...state.candles.values()].sort((a, b) => a.window_start_ms - b.window_start_ms);
  candles.setData(bars.map(candle));
  volume.setData(bars.map(vol));
  vwap.setData(bars.map(line));
  state.lastTime = bars.length ? t(bars[bars.length - 1]) : null;
}

function apply(bar) {
  const time = t(bar);
  // A closed bar is final: a forming message for its window (or an earlier one), which the two
  // topics can deliver after it, must not reopen it.
  if (bar.provisional && state.closedUpTo !== null && time <= state.closedUpTo) return;
  if (!bar.provisional) state.closedUpTo = Math.max(state.closedUpTo ?? time, time);
  state.candles.set(time, bar);
  if (state.lastTime === null || time >= state.lastTime) {
    candles.update(candle(bar));   // the forming candle moves, or a new one is appended
    volume.update(vol(bar));
    vwap.update(line(bar));
    state.lastTime = time;
  } else {
    redraw();                      // an earlier window closed: lightweight-charts only updates the last
  }
  state.updates += 1;
  legend(bar);
}

function fmt(x, digits = 2) { return x == null ? "-" : Number(x).toFixed(digits); }

function legend(bar) {
  const el = document.getElementById("legend");
  const when = new Date(bar.window_start_ms).toISOString().replace("T", " ").slice(0, 19);
  el.dataset.symbol = bar.symbol;
  el.dataset.time = String(bar.window_start_ms);
  el.dataset.close = String(bar.close);
  el.dataset.volume = String(bar.volume);
  el.dataset.provisional = String(Boolean(bar.provisional));
  el.innerHTML = "";
  const parts = [
    `${bar.symbol}  ${when} UTC`,
    `O ${fmt(bar.open)}  H ${fmt(bar.high)}  L ${fmt(bar.low)}  C ${fmt(bar.close)}`,
    `V ${Number(bar.volume).toLocaleString()}  VWAP ${fmt(bar.vwap, 4)}  n ${bar.trade_count}`,
  ];
  for (const text of parts) {
    const span = document.createElement("span");
    span.textContent = text + "   ";
    el.appendChild(span);
  }
  if (bar.provisional) {
    const tag = document.createElement("span");
    tag.className = "forming";
    tag.textContent = "forming";
    el.appendChild(tag);
  }
}

function notice(text) { document.getElementById("notice").textContent = text || ""; }

async function getJSON(url) {
  const response = await fetch(url);
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

async function pick(symbol) {
  if (state.events) state.events.close();
  state.symbol = symbol;
  state.candles = new Map();
  state.closedUpTo = null;
  state.updates = 0;
  const url = new URL(window.location);
  url.searchParams.set("symbol", symbol);
  if (state.resolution) url.searchParams.set("resolution", state.resolution);
  else url.searchParams.delete("resolution");
  window.history.replaceState(null, "", url);
  const rolled = state.resolution ? `&resolution=${encodeURIComponent(state.resolution)}` : "";
  try {
    const history = await getJSON(`/api/bars?symbol=${encodeURIComponent(symbol)}&limit=${HISTORY}${rolled}`);
    for (const bar of history.bars) {
      state.candles.set(t(bar), bar);
      state.closedUpTo = Math.max(state.closedUpTo ?? t(bar), t(bar));
    }
    notice(history.bars.length ? "" : "no closed bar in the lake yet: live bars only");
  } catch (err) {
    notice(`history: ${err.message}`);
  }
  if (state.symbol !== symbol) return;  // picked another meanwhile
  redraw();
  chart.timeScale().scrollToRealTime();
  const last = [...state.candles.values()].pop();
  if (last) legend(last);
  const feed = document.getElementById("feed");
  if (state.resolution) {  // roll-ups come from the lake: no live feed for them
    feed.textContent = `${state.resolution} bars from the lake`;
    feed.classList.remove("live");
    state.events = null;
    return;
  }
  const events = new EventSource(`/api/live?symbol=${encodeURIComponent(symbol)}`);
  events.onopen = () => { feed.textContent = "live"; feed.classList.add("live"); };
  events.onerror = () => { feed.textContent = "reconnecting"; feed.classList.remove("live"); };
  events.onmessage = (e) => { if (state.symbol === symbol) apply(JSON.parse(e.data)); };
  state.events = events;
}

async function loadSymbols() {
  const select = document.getElementById("symbol");
  let symbols = [];
  try {
    symbols = (await getJSON("/api/symbols")).symbols;
  } catch (err) {
    notice(`symbols: ${err.message}`);
    return;
  }
  const known = new Set([...select.options].map((o) => o.value));
  for (const s of symbols) {
    if (!known.has(s)) select.add(new Option(s, s));
  }
  if (state.symbol === null && symbols.length) {
    const wanted = new URL(window.location).searchParams.get("symbol");
    const first = symbols.includes(wanted) ? wanted : symbols[0];
    select.value = first;
    pick(first);
  }
}

document.getElementById("symbol").addEventListener("change", (e) => pick(e.target.value));
document.getElementById("resolution").addEventListener("change", (e) => {
  state.resolution = e.target.value;
  if (state.symbol) pick(state.symbol);
});
state.resolution = new URL(window.location).searchParams.get("resolution") || "";
document.getElementById("resolution").value = state.resolution;

// --- health ---------------------------------------------------------------------------------

const healthHistory = {};

function sparkline(card, values) {
  const poly = card.querySelector("polyline");
  if (values.length < 2) { poly.setAttribute("points", ""); return; }
  const lo = Math.min(...values), hi = Math.max(...values);
  const span = hi - lo || 1;
  const step = 100 / (SPARK_POINTS - 1);
  const start = SPARK_POINTS - values.length;
  poly.setAttribute("points", values.map((v, i) =>
    `${((start + i) * step).toFixed(1)},${(22 - ((v - lo) / span) * 20).toFixed(1)}`).join(" "));
}

function show(key, value) {
  const card = document.querySelector(`.card[data-key="${key}"]`);
  if (!card) return;
  const digits = key === "ticks_per_second" || key === "lag" || key === "late" || key === "rejected" ? 0 : 2;
  card.querySelector(".value").textContent = value == null ? "-" : Number(value).toLocaleString(undefined, { maximumFractionDigits: digits });
  card.dataset.value = value == null ? "" : String(value);
  if (value == null) return;
  const values = (healthHistory[key] = healthHistory[key] || []);
  values.push(Number(value));
  if (values.length > SPARK_POINTS) values.shift();
  sparkline(card, values);
}

async function pollHealth() {
  const status = document.getElementById("health-status");
  try {
    const h = await getJSON("/api/health");
    state.health = h;
    if (!h.ok) {
      status.textContent = h.error;
      status.classList.add("bad");
      return;
    }
    for (const key of ["ticks_per_second", "lag", "watermark_delay_s", "late", "rejected", "batch_seconds"]) show(key, h[key]);
    const wm = h.watermark ? new Date(h.watermark * 1000).toISOString().replace("T", " ").slice(0, 19) : "-";
    status.textContent = `batch ${h.batch_id ?? "-"} · watermark ${wm} · bars ${Number(h.bars).toLocaleString()}`;
    status.classList.remove("bad");
  } catch (err) {
    status.textContent = `dashboard unreachable: ${err.message}`;
    status.classList.add("bad");
  }
}

loadSymbols();
setInterval(loadSymbols, 5000);
pollHealth();
setInterval(pollHealth, 1000);
