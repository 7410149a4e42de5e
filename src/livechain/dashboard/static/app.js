// Livechain dashboard: one Server-Sent Events stream (/api/live) drives everything live; the slower views
// (performance matrix, history charts, provider detail) are read from the JSON API on their own timers.

import { $, api, breakerClass, fill, fmt, h, setProviders } from "./lib.js";
import { Feed } from "./feed.js";
import { renderLeaderboard, renderMargins, renderMatrix } from "./chain.js";
import { Charts } from "./charts.js";
import { Drawer } from "./drawer.js";
import { Controls } from "./controls.js";

const state = {
  overview: null, // /api/chains, pushed every ~200 ms
  chain: undefined, // selected chain name (chain view) or null (overview); undefined until routed
  region: "", // region shown in the chain view ("" = this process's own)
  leaderboard: null,
  simulators: {},
  lastSeq: null,
  lastTick: 0,
  headAt: new Map(), // chain → epoch seconds of its best head (ticks client-side)
  heads: new Map(), // chain → last best head (to flash changes)
  rps: new Map(), // chain → recent requests/s samples (sparkline)
  rpsSampledAt: 0,
};

const feedAll = new Feed($("#feed-all"), { showChain: true });
const feedChain = new Feed($("#feed-chain"));
const charts = new Charts($("#chart-latency"), $("#chart-wins"));
const controls = new Controls({ onChange: () => drawer.isOpen && drawer.refresh() });
const drawer = new Drawer({ faultRow: (c, p) => controls.faultRow(c, p) });

const chainOf = (name) => (state.overview ? state.overview.chains.find((c) => c.name === name) : null);
const ownRegion = () => !state.region || (state.overview && state.region === state.overview.region);
const regionQS = () => (ownRegion() ? "" : "?region=" + encodeURIComponent(state.region));

// ------------------------------------------------------------------------------------------- live push

let source = null;
function connect() {
  if (source) source.close();
  const qs = new URLSearchParams();
  if (state.chain) qs.set("chain", state.chain);
  // reconnecting for another chain: ask for the last 200 events again so the new chain's feed starts full
  // (the feeds ignore events they have already shown)
  if (state.lastSeq != null) qs.set("since", Math.max(0, state.lastSeq - 200));
  source = new EventSource("/api/live?" + qs);
  source.addEventListener("tick", (m) => onTick(JSON.parse(m.data)));
  source.addEventListener("open", () => setLive("live"));
  source.addEventListener("error", () => setLive("reconnecting"));
}

function setLive(s) {
  const el = $("#live");
  if (el.dataset.state === s) return;
  el.dataset.state = s;
  el.lastElementChild.textContent = s === "live" ? "Live" : s === "stale" ? "Stalled" : "Reconnecting…";
}

function onTick(msg) {
  state.lastSeq = msg.seq;
  state.lastTick = performance.now();
  setLive("live");
  if (msg.overview) {
    const first = !state.overview;
    state.overview = msg.overview;
    if (first) queueMicrotask(() => refreshSlow(true));
    const now = Date.now() / 1000;
    for (const c of msg.overview.chains) {
      if (c.head_age_s != null) state.headAt.set(c.name, now - c.head_age_s);
      setProviders(c.name, c.providers);
    }
    sampleRps();
  }
  if (msg.events && msg.events.length) {
    feedAll.push(msg.events);
    feedChain.push(msg.events);
    if (msg.events.some((e) => e.kind === "fault")) controls.refreshFaults();
  }
  if (msg.leaderboard && ownRegion() && msg.leaderboard.chain === state.chain) state.leaderboard = msg.leaderboard;
  state.simulators = msg.simulators || {};
  render();
}

function sampleRps() {
  const now = performance.now();
  if (now - state.rpsSampledAt < 1000) return;
  state.rpsSampledAt = now;
  for (const c of state.overview.chains) {
    const s = state.rps.get(c.name) || [];
    s.push(c.rps || 0);
    if (s.length > 90) s.shift();
    state.rps.set(c.name, s);
  }
}

// ------------------------------------------------------------------------------------------- routing

function route() {
  const hash = decodeURIComponent(location.hash.slice(1));
  const chain = hash.startsWith("chain/") ? hash.slice(6) : null;
  if (chain !== state.chain) {
    state.chain = chain;
    state.leaderboard = null;
    for (const id of ["#leaderboard", "#margins", "#matrix"]) $(id).replaceChildren();
    feedChain.setChain(chain);
    controls.setChain(chain);
    drawer.close();
    connect();
    slowAt = { ...NEVER };
    if (chain) refreshSlow(true);
  }
  $("#view-overview").hidden = !!chain;
  $("#view-chain").hidden = !chain;
  render();
}

// ------------------------------------------------------------------------------------------- rendering

function render() {
  const ov = state.overview;
  if (!ov) return;
  renderTabs(ov);
  renderRegion(ov);
  if (!state.chain) {
    renderCards(ov);
    renderOverviewKpis(ov);
    $("#overview-sub").textContent = `${ov.chains.length} chain${ov.chains.length === 1 ? "" : "s"} · region ${ov.region}`;
    return;
  }
  const c = chainOf(state.chain);
  if (!c) {
    $("#chain-title").textContent = state.chain;
    $("#chain-sub").textContent = "This chain is not configured.";
    return;
  }
  renderChainHead(c);
  if (state.leaderboard && state.leaderboard !== state.renderedBoard) {
    state.renderedBoard = state.leaderboard;
    renderLeaderboard($("#leaderboard"), c.name, state.leaderboard.ranked, c, openProvider);
    renderMargins($("#margins"), c.name, state.leaderboard.ranked);
  } else if (!$("#leaderboard").firstChild) renderLeaderboard($("#leaderboard"), c.name, [], c, openProvider);
  controls.renderSimStatus(state.simulators[c.name]);
}

function renderTabs(ov) {
  const tabs = $("#tabs");
  const want = ["overview", ...ov.chains.map((c) => c.name)].join("|");
  if (tabs.dataset.key !== want) {
    tabs.dataset.key = want;
    fill(tabs,
      h("a.tab", { href: "#overview", "data-tab": "" }, "Overview"),
      ov.chains.map((c) => h("a.tab", { href: "#chain/" + encodeURIComponent(c.name), "data-tab": c.name }, h("i.dot"), c.name)));
  }
  for (const a of tabs.children) {
    const name = a.dataset.tab;
    a.classList.toggle("active", (name || null) === state.chain);
    if (name) {
      const c = chainOf(name);
      a.firstChild.className = "dot " + statusClass(c && c.status);
    }
  }
}

function renderRegion(ov) {
  const regions = ov.regions || [];
  const wrap = $("#region-wrap");
  wrap.hidden = regions.length < 2;
  const sel = $("#region");
  if (regions.length > 1 && sel.dataset.key !== regions.join("|")) {
    sel.dataset.key = regions.join("|");
    fill(sel, regions.map((r) => h("option", { value: r, selected: r === (state.region || ov.region) ? true : null }, r + (r === ov.region ? " (this)" : ""))));
  }
}

const statusClass = (s) => (s === "ok" ? "ok" : s === "degraded" ? "warn" : s === "down" || s === "stalled" ? "bad" : "");

/** The chain's status pill: its status word, and "stalled" too when its heads stopped (a down chain can be
 *  stalled as well); the title says since when and the thresholds. */
function paintStatus(el, c) {
  const word = c.status || "unknown";
  el.textContent = c.stalled && word !== "stalled" ? `${word} · stalled` : word;
  el.className = "pill " + statusClass(c.stalled ? "stalled" : c.status);
  el.dataset.stalled = c.stalled ? "true" : "false";
  el.title = c.stalled
    ? `No new head for ${fmt.num((c.stalled_for_s || 0) + (c.stall_after_s || 0))} s (stalled after ${fmt.num(c.stall_after_s)} s` +
      (c.block_time_s != null ? `, block time ${fmt.num(c.block_time_s, 2)} s)` : ")")
    : c.block_time_s != null ? `Block time ${fmt.num(c.block_time_s, 2)} s · stalled after ${fmt.num(c.stall_after_s)} s without a head` : "";
}

const cards = new Map();
function renderCards(ov) {
  const root = $("#chain-cards");
  for (const c of ov.chains) {
    let card = cards.get(c.name);
    if (!card || !card.el.isConnected) {
      card = makeCard(c.name);
      cards.set(c.name, card);
      root.append(card.el);
    }
    card.update(c);
  }
  for (const [name, card] of cards) {
    if (!chainOf(name)) {
      card.el.remove();
      cards.delete(name);
    }
  }
}

function makeCard(name) {
  const refs = {};
  const el = h("a.card.chain-card", { href: "#chain/" + encodeURIComponent(name), "data-chain": name },
    h("div.card-top", h("h3", name), (refs.status = h("span.pill", { "data-testid": "status-" + name }, "…"))),
    (refs.sub = h("div.muted.small")),
    h("div.head-row",
      (refs.head = h("span.head-num", { "data-testid": "head-" + name }, "—")),
      (refs.age = h("span.age", { "data-age": name }, ""))),
    (refs.providers = h("div.provider-dots")),
    h("div.card-metrics",
      h("div", h("span.muted", "Requests/s"), (refs.rps = h("b", { "data-testid": "rps-" + name }, "—"))),
      h("div", h("span.muted", "Errors"), (refs.err = h("b", "—"))),
      h("div", h("span.muted", "Providers"), (refs.up = h("b", "—"))),
      h("div", h("span.muted", "Cache hits"), (refs.cache = h("b", { "data-testid": "cache-" + name }, "—"))),
      h("div", h("span.muted", "Upstream saved"), (refs.saved = h("b", { "data-testid": "saved-" + name }, "—")))),
    (refs.spark = h("div.spark")));
  return {
    el,
    update(c) {
      paintStatus(refs.status, c);
      refs.sub.textContent = `chain ${c.chain_id} · ${c.strategy} routing`;
      bumpHead(refs.head, c);
      refs.rps.textContent = fmt.rate(c.rps);
      refs.err.textContent = fmt.pct(c.error_rate);
      refs.err.className = c.error_rate > 0.01 ? "bad-text" : "";
      const cache = c.cache || {};
      refs.cache.textContent = cache.enabled ? fmt.pct(cache.hit_ratio) : "off";
      refs.saved.textContent = cache.enabled ? fmt.int(cache.saved) : "—";
      const states = Object.values(c.breakers || {});
      const half = states.filter((b) => b === "half_open").length;
      const down = states.filter((b) => b === "open").length;
      fill(refs.up, c.providers_total != null ? `${c.providers_up} / ${c.providers_total} up` : "—",
        half ? h("small.warn-text", ` · ${half} degraded`) : null, down ? h("small.bad-text", ` · ${down} down`) : null);
      const stalled = new Set(c.providers_stalled || []);
      fill(refs.providers, (c.providers || []).map((p) => {
        const b = (c.breakers || {})[p] || "closed";
        const s = stalled.has(p);
        return h("span.pdot", { title: `${p}: breaker ${b.replace("_", "-")}` + (s ? " · head stalled" : ""), "data-provider": p,
          "data-stalled": s ? "true" : null }, h("i.dot." + (s ? "bad" : breakerClass(b))), p, s ? h("small.bad-text", " stalled") : null);
      }));
      refs.spark.replaceChildren(sparkline(state.rps.get(c.name) || []));
    },
  };
}

function bumpHead(el, c) {
  const text = fmt.block(c.best_head);
  if (el.textContent !== text) {
    const had = state.heads.get(c.name);
    el.textContent = text;
    state.heads.set(c.name, c.best_head);
    if (had != null) {
      el.classList.remove("bump");
      void el.offsetWidth; // restart the animation
      el.classList.add("bump");
    }
  }
}

function sparkline(values) {
  const W = 240, H = 36;
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("aria-label", "requests per second, last 90 s");
  if (values.length < 2) return svg;
  const max = Math.max(1, ...values);
  const pts = values.map((v, i) => [(i / (values.length - 1)) * W, H - 2 - (v / max) * (H - 4)]);
  const line = pts.map((p, i) => (i ? "L" : "M") + p[0].toFixed(1) + " " + p[1].toFixed(1)).join(" ");
  const area = document.createElementNS(svg.namespaceURI, "path");
  area.setAttribute("d", `${line} L${W} ${H} L0 ${H} Z`);
  area.setAttribute("class", "spark-area");
  const path = document.createElementNS(svg.namespaceURI, "path");
  path.setAttribute("d", line);
  path.setAttribute("class", "spark-line");
  svg.append(area, path);
  return svg;
}

function renderOverviewKpis(ov) {
  const k = $("#overview-kpis");
  if (!k.firstChild) {
    fill(k,
      kpi("Requests", h("span", { "data-testid": "total-rps" }), h("small.muted", " req/s")),
      kpi("Error rate", h("span", { "data-testid": "total-errors" })),
      kpi("Providers up", h("span", { "data-testid": "total-up" })),
      kpi("Open breakers", h("span", { "data-testid": "total-open" })));
  }
  let rps = 0, errors = 0, up = 0, total = 0, open = 0;
  for (const c of ov.chains) {
    rps += c.rps || 0;
    errors += (c.rps || 0) * (c.error_rate || 0);
    up += c.providers_up || 0;
    total += c.providers_total || 0;
    open += Object.values(c.breakers || {}).filter((b) => b !== "closed").length;
  }
  $("[data-testid=total-rps]", k).textContent = fmt.rate(rps);
  const err = $("[data-testid=total-errors]", k);
  err.textContent = rps ? fmt.pct(errors / rps) : "—";
  err.className = rps && errors / rps > 0.01 ? "bad-text" : "";
  $("[data-testid=total-up]", k).textContent = `${up} / ${total}`;
  const o = $("[data-testid=total-open]", k);
  o.textContent = String(open);
  o.className = open ? "bad-text" : "";
}

function renderChainHead(c) {
  $("#chain-title").textContent = c.name;
  $("#chain-sub").textContent = `chain ${c.chain_id} · ${c.strategy} routing · region ${state.region || state.overview.region}`;
  const k = $("#chain-kpis");
  if (k.dataset.chain !== c.name) {
    k.dataset.chain = c.name;
    fill(k,
      kpi("Best head", h("span.head-num", { "data-testid": "kpi-head" }), h("span.age", { "data-age": c.name })),
      kpi("Requests", h("span", { "data-testid": "kpi-rps" }), h("small.muted", " req/s")),
      kpi("Error rate", h("span", { "data-testid": "kpi-errors" })),
      kpi("Providers", h("span", { "data-testid": "kpi-providers" })),
      kpi("Cache", h("span", { "data-testid": "kpi-cache" })),
      kpi("Spend today", h("span", { "data-testid": "kpi-spend" }, "—")),
      kpi("Block time", h("span", { "data-testid": "kpi-block-time" })),
      kpi("Status", h("span.pill", { "data-testid": "kpi-status" })));
  }
  bumpHead($("[data-testid=kpi-head]", k), c);
  $("[data-testid=kpi-rps]", k).textContent = fmt.rate(c.rps);
  const err = $("[data-testid=kpi-errors]", k);
  err.textContent = fmt.pct(c.error_rate);
  err.className = c.error_rate > 0.01 ? "bad-text" : "";
  const b = Object.values(c.breakers || {});
  const open = b.filter((s) => s === "open").length;
  const half = b.filter((s) => s === "half_open").length;
  $("[data-testid=kpi-providers]", k).textContent =
    `${c.providers_up ?? "—"} / ${c.providers_total ?? "—"} up` + (open ? ` · ${open} open` : "") + (half ? ` · ${half} half-open` : "");
  const cache = c.cache || {};
  $("[data-testid=kpi-cache]", k).textContent = cache.enabled
    ? `${fmt.pct(cache.hit_ratio)} hits · ${fmt.int(cache.saved)} upstream saved`
    : "off";
  $("[data-testid=kpi-block-time]", k).textContent = c.block_time_s != null
    ? `${fmt.num(c.block_time_s, 2)} s · stall after ${fmt.num(c.stall_after_s)} s`
    : `— · stall after ${fmt.num(c.stall_after_s)} s`;
  paintStatus($("[data-testid=kpi-status]", k), c);
}

function kpi(label, ...value) {
  return h("div.kpi", h("span.muted", label), h("div.kpi-value", ...value));
}

function tickAges() {
  const now = Date.now() / 1000;
  for (const el of document.querySelectorAll("[data-age]")) {
    const at = state.headAt.get(el.dataset.age);
    el.textContent = at == null ? "" : fmt.age(Math.max(0, now - at)) + " ago";
    el.classList.toggle("stale", at != null && now - at > 30);
  }
  for (const t of document.querySelectorAll(".feed time[data-ts]")) t.title = fmt.ago(Number(t.dataset.ts));
  if (state.lastTick && performance.now() - state.lastTick > 3000) setLive("stale");
}

// ------------------------------------------------------------------------------------------- slow views

const NEVER = { methods: -Infinity, history: -Infinity, board: -Infinity, spend: -Infinity };
let slowAt = { ...NEVER };
async function refreshSlow(force = false) {
  const chain = state.chain;
  if (!chain || document.hidden || !state.overview) return;
  const now = performance.now();
  const base = `/api/chains/${encodeURIComponent(chain)}`;
  const c = chainOf(chain);
  const providers = c ? c.providers : [];
  const jobs = [];
  if (force || now - slowAt.methods > 3000) {
    slowAt.methods = now;
    jobs.push(api(base + "/methods" + regionQS()).then((d) => state.chain === chain && renderMatrix($("#matrix"), chain, d, openProvider)));
  }
  if (force || now - slowAt.history > 15000) {
    slowAt.history = now;
    const q = (kind) => `${base}/history?kind=${kind}&since=${Math.floor(Date.now() / 1000 - 3600)}${ownRegion() ? "" : "&region=" + encodeURIComponent(state.region)}`;
    jobs.push(api(q("rpc")).then((d) => state.chain === chain && charts.renderLatency(chain, providers, d.points)));
    jobs.push(api(q("race")).then((d) => state.chain === chain && charts.renderWins(chain, providers, d.points)));
  }
  if (ownRegion() && (force || now - slowAt.spend > 5000)) {
    slowAt.spend = now;
    jobs.push(api(base + "/spend").then((d) => state.chain === chain && renderSpend(d)));
  }
  if (!ownRegion() && (force || now - slowAt.board > 2000)) {
    slowAt.board = now;
    jobs.push(api(base + "/leaderboard" + regionQS()).then((d) => {
      if (state.chain === chain) {
        state.leaderboard = d;
        render();
      }
    }));
  }
  const results = await Promise.allSettled(jobs);
  for (const r of results) if (r.status === "rejected") console.warn("refresh failed:", r.reason && r.reason.message);
}

/** The chain's "Spend today" KPI: money (or units) sent to providers today, Livechain's own share, what the
 *  cache and coalescing saved, and how many providers are over budget. */
function renderSpend(d) {
  const el = $("[data-testid=kpi-spend]");
  if (!el) return;
  const ps = Object.values(d.providers || {});
  const money = ps.some((p) => p.unit === "money");
  const field = money ? "money" : "units";
  const today = ps.reduce((a, p) => a + p.today.client[field] + p.today.own[field], 0);
  const own = ps.reduce((a, p) => a + p.today.own.requests, 0);
  const over = ps.filter((p) => p.exhausted).length;
  const show = (v) => (money ? (v > 0 && v < 1 ? v.toPrecision(3) : fmt.num(v, 2)) : fmt.int(v) + " u");
  fill(el, show(today), h("small.muted", ` · ${fmt.int(own)} own req · saved ${show(d.saved[field])}`),
    over ? h("small.bad-text", ` · ${over} over budget`) : null);
}

function openProvider(provider) {
  drawer.open(state.chain, provider);
}

// ------------------------------------------------------------------------------------------- start

$("#region").addEventListener("change", (e) => {
  state.region = e.target.value === (state.overview && state.overview.region) ? "" : e.target.value;
  state.leaderboard = null;
  $("#lb-note").textContent = ownRegion() ? "newHeads races · updated every second" : `region ${state.region} · from its last snapshot`;
  refreshSlow(true);
});
$("#feed-races").addEventListener("change", (e) => (feedChain.races = e.target.checked));
window.addEventListener("hashchange", route);
matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => {
  document.documentElement.dataset.scheme = matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  charts.rebuild();
  refreshSlow(true);
});
document.documentElement.dataset.scheme = matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";

setInterval(tickAges, 100);
setInterval(() => refreshSlow(), 1000);
if (!location.hash) history.replaceState(null, "", "#overview");
controls.load();
route();
