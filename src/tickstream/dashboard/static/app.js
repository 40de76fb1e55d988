// tickstream dashboard: candles from /api/bars (the lake), live bars over /api/live (server-sent
// events from the bars topics), health from /api/health (the job's Prometheus metrics). Tick,
// volume and dollar bars (kind) come from the lake, polled: one candle per bar, placed by number.
"use strict";

const LWC = window.LightweightCharts;
const HISTORY = 1000;       // closed bars loaded when a symbol is picked
const SPARK_POINTS = 60;    // health samples kept per sparkline (one a second)
const POLL_MS = 2000;       // how often tick, volume and dollar bars are read from the lake
const MEASURE = { tick: "ticks", volume: "of volume", dollar: "of traded value (price x volume)" };

const state = {
  symbol: null,
  resolution: "",           // "" = the stored bars, with live updates; else a roll-up
  kind: "time",             // time, or tick / volume / dollar bars (placed by their number)
  poll: null,               // the timer reading new activity bars

  candles: new Map(),       // time (s) -> bar message
  lastTime: null,
  closedUpTo: null,         // the latest closed candle's time: a forming bar at or before it is stale
  events: null,
  updates: 0,               // bars applied since the symbol was picked
  health: {},
};
window.tickstream = state;  // for the curious (and for the browser test)

function iso(ms) { return new Date(ms).toISOString().replace("T", " ").slice(0, 23); }

// On a time chart the axis is the clock. Activity bars are spaced by activity: candle n sits at
// "time" n, and the axis and crosshair show the time of its last tick instead.
function timeLabel(time) {
  if (state.kind === "time") return iso(time * 1000).slice(0, 19);
  const bar = state.candles.get(time);
  return bar ? `#${time} · ${iso(bar.last_time_ms)} UTC` : `#${time}`;
}
function tickLabel(time) {
  if (state.kind === "time") return null;  // the library's own clock labels
  const bar = state.candles.get(time);
  return bar ? iso(bar.last_time_ms).slice(11, 19) : `#${time}`;
}

const chart = LWC.createChart(document.getElementById("chart"), {
  autoSize: true,
  localization: { timeFormatter: timeLabel },
  layout: { background: { color: "#0f1419" }, textColor: "#d1d4dc" },
  grid: { vertLines: { color: "#1c232b" }, horzLines: { color: "#1c232b" } },
  timeScale: {
    timeVisible: true, secondsVisible: true, barSpacing: 12, rightOffset: 6,
    tickMarkFormatter: tickLabel,
  },
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

function t(bar) { return bar.kind ? bar.number : Math.floor(bar.window_start_ms / 1000); }
function candle(bar) { return { time: t(bar), open: bar.open, high: bar.high, low: bar.low, close: bar.close }; }
function vol(bar) { return { time: t(bar), value: bar.volume, color: bar.close >= bar.open ? "#26a69a66" : "#ef535066" }; }
function line(bar) { return bar.vwap == null ? { time: t(bar) } : { time: t(bar), value: bar.vwap }; }

function redraw() {
  const bars = [...state.candles.values()].sort((a, b) => t(a) - t(b));
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
  const when = bar.kind
    ? `${bar.kind} bar #${bar.number}  ${iso(bar.first_time_ms)} to ${iso(bar.last_time_ms)}`
    : new Date(bar.window_start_ms).toISOString().replace("T", " ").slice(0, 19);
  el.dataset.symbol = bar.symbol;
  el.dataset.time = String(bar.kind ? bar.last_time_ms : bar.window_start_ms);
  el.dataset.kind = bar.kind || "time";
  el.dataset.close = String(bar.close);
  el.dataset.volume = String(bar.volume);
  el.dataset.provisional = String(Boolean(bar.provisional));
  el.innerHTML = "";
  const parts = [
    `${bar.symbol}  ${when} UTC`,
    `O ${fmt(bar.open)}  H ${fmt(bar.high)}  L ${fmt(bar.low)}  C ${fmt(bar.close)}`,
    `V ${Number(bar.volume).toLocaleString()}  VWAP ${fmt(bar.vwap, 4)}  n ${bar.trade_count}`,
  ];
  if (bar.kind) parts.push(`value ${Number(bar.dollar_value).toLocaleString()}`);
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

function axisNote(bars) {
  const el = document.getElementById("axis");
  if (state.kind === "time") { el.hidden = true; el.textContent = ""; return; }
  const last = bars[bars.length - 1];
  const every = last ? `${Number(last.threshold).toLocaleString()} ` : "";
  el.textContent = `${state.kind} bars: a bar every ${every}${MEASURE[state.kind]}, one candle ` +
    "each, evenly spaced. The axis counts bars, not time: each is labelled with its last " +
    "tick's time (UTC), so the clock runs unevenly along it. Closed bars only, read from the " +
    `lake every ${POLL_MS / 1000} s.`;
  el.hidden = false;
}

async function pollActivity(symbol, kind) {
  if (state.symbol !== symbol || state.kind !== kind) return;
  try {
    const url = `/api/bars?symbol=${encodeURIComponent(symbol)}&kind=${kind}&limit=200`;
    const fresh = (await getJSON(url)).bars;
    if (state.symbol !== symbol || state.kind !== kind) return;
    for (const bar of fresh) if (state.lastTime === null || bar.number > state.lastTime) apply(bar);
  } catch (err) {
    notice(`${kind} bars: ${err.message}`);
  }
}

async function pick(symbol) {
  if (state.events) state.events.close();
  if (state.poll) clearInterval(state.poll);
  state.poll = null;
  state.symbol = symbol;
  state.candles = new Map();
  state.closedUpTo = null;
  state.updates = 0;
  const url = new URL(window.location);
  url.searchParams.set("symbol", symbol);
  if (state.resolution) url.searchParams.set("resolution", state.resolution);
  else url.searchParams.delete("resolution");
  if (state.kind !== "time") url.searchParams.set("kind", state.kind);
  else url.searchParams.delete("kind");
  window.history.replaceState(null, "", url);
  const kind = state.kind;
  const rolled = kind !== "time" ? `&kind=${kind}`
    : state.resolution ? `&resolution=${encodeURIComponent(state.resolution)}` : "";
  try {
    const history = await getJSON(`/api/bars?symbol=${encodeURIComponent(symbol)}&limit=${HISTORY}${rolled}`);
    for (const bar of history.bars) {
      state.candles.set(t(bar), bar);
      state.closedUpTo = Math.max(state.closedUpTo ?? t(bar), t(bar));
    }
    axisNote(history.bars);
    const none = kind === "time" ? "no closed bar in the lake yet: live bars only"
      : `no ${kind} bar of ${symbol} in the lake yet`;
    notice(history.bars.length ? "" : none);
  } catch (err) {
    notice(`history: ${err.message}`);
  }
  if (state.symbol !== symbol || state.kind !== kind) return;  // picked another meanwhile
  redraw();
  chart.timeScale().scrollToRealTime();
  const last = [...state.candles.values()].pop();
  if (last) legend(last);
  const feed = document.getElementById("feed");
  if (kind !== "time") {  // activity bars come from the lake, polled
    feed.textContent = `${kind} bars from the lake`;
    feed.classList.remove("live");
    state.events = null;
    state.poll = setInterval(() => pollActivity(symbol, kind), POLL_MS);
    return;
  }
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
async function loadKinds() {
  const select = document.getElementById("kind");
  try {
    const kinds = (await getJSON("/api/kinds")).kinds;
    const known = new Set([...select.options].map((o) => o.value));
    for (const k of kinds) if (!known.has(k)) select.add(new Option(k, k));
  } catch (err) {
    notice(`kinds: ${err.message}`);
  }
  select.value = state.kind;
}

document.getElementById("kind").addEventListener("change", (e) => {
  state.kind = e.target.value;
  document.getElementById("resolution").disabled = state.kind !== "time";
  if (state.symbol) pick(state.symbol);
});
document.getElementById("resolution").addEventListener("change", (e) => {
  state.resolution = e.target.value;
  if (state.symbol) pick(state.symbol);
});
state.resolution = new URL(window.location).searchParams.get("resolution") || "";
document.getElementById("resolution").value = state.resolution;
state.kind = new URL(window.location).searchParams.get("kind") || "time";
document.getElementById("resolution").disabled = state.kind !== "time";

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

loadKinds().then(loadSymbols);
setInterval(loadSymbols, 5000);
pollHealth();
setInterval(pollHealth, 1000);
