// Charts over time from /api/chains/{chain}/history (uPlot, vendored): latency and race win share.

import { colorOf, fill, fmt, h } from "./lib.js";

function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

function tint(hex, alpha) {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${(n >> 16) & 255}, ${(n >> 8) & 255}, ${n & 255}, ${alpha})`;
}

/** One uPlot chart bound to a container; rebuilt when its series change, resized with the container. */
class Chart {
  constructor(el, { yLabel, yValues, yRange }) {
    this.el = el;
    this.yLabel = yLabel;
    this.yValues = yValues;
    this.yRange = yRange;
    this.plot = null;
    this.key = "";
    new ResizeObserver(() => this.resize()).observe(el);
  }

  size() {
    const w = Math.max(200, this.el.clientWidth);
    return { width: w, height: w < 500 ? 190 : 230 };
  }

  resize() {
    if (this.plot) this.plot.setSize(this.size());
  }

  empty(message) {
    if (this.plot) this.plot.destroy();
    this.plot = null;
    this.key = "";
    fill(this.el, h("div.chart-empty", message));
  }

  /** series: [{label, color}], data: [xs, ...ys]; bands: uPlot bands (stacked areas). */
  draw(series, data, { bands = [], fills = [], values } = {}) {
    if (typeof uPlot === "undefined") return;
    const key = series.map((s) => s.label + s.color).join("|") + (document.documentElement.dataset.scheme || "");
    if (this.plot && key === this.key) {
      this.plot.setData(data);
      return;
    }
    if (this.plot) this.plot.destroy();
    this.el.replaceChildren();
    this.key = key;
    const axis = { stroke: cssVar("--muted"), grid: { stroke: cssVar("--grid"), width: 1 }, ticks: { stroke: cssVar("--grid") } };
    const opts = {
      ...this.size(),
      cursor: { points: { size: 7 } },
      legend: { live: true },
      scales: {
        // at least the last 15 minutes up to now (uPlot would stretch a single bucket over a thousand days)
        x: { time: true, range: (u, min) => { const now = Date.now() / 1000; return [Math.min(min ?? now, now - 900), now + 30]; } },
        y: this.yRange ? { range: this.yRange } : { range: (u, min, max) => [0, Math.max(1, (max ?? 1) * 1.15)] },
      },
      axes: [
        { ...axis },
        { ...axis, size: 74, values: (u, vals) => vals.map(this.yValues) },
      ],
      bands,
      series: [
        { value: (u, v) => (v == null ? "—" : fmt.clock(v)) },
        ...series.map((s, i) => ({
          label: s.label,
          stroke: s.color,
          width: 2,
          fill: fills[i] || undefined,
          points: { show: true, size: 5, fill: s.color },
          spanGaps: false,
          value: values ? (u, v, si, idx) => values(si, idx) : (u, v) => (v == null ? "—" : this.yValues(v)),
        })),
      ],
    };
    this.plot = new uPlot(opts, data, this.el);
  }
}

export class Charts {
  constructor(latencyEl, winsEl) {
    this.latency = new Chart(latencyEl, { yLabel: "ms", yValues: (v) => fmt.ms(v) });
    this.wins = new Chart(winsEl, { yLabel: "share", yValues: (v) => Math.round(v) + " %", yRange: [0, 100] });
  }

  rebuild() {
    for (const c of [this.latency, this.wins]) {
      c.key = "";
    }
  }

  /** rpc points → count-weighted p50 per provider per minute. */
  renderLatency(chain, providers, points) {
    if (!points || !points.length) return this.latency.empty("No requests recorded yet — the first minute bucket appears as soon as traffic flows.");
    const xs = [...new Set(points.map((p) => p.ts))].sort((a, b) => a - b);
    const ids = orderProviders(providers, points);
    const acc = new Map(ids.map((id) => [id, new Map()]));
    for (const p of points) {
      if (p.p50_ms == null || !p.count) continue;
      const m = acc.get(p.provider);
      const cur = m.get(p.ts) || [0, 0];
      m.set(p.ts, [cur[0] + p.p50_ms * p.count, cur[1] + p.count]);
    }
    const ys = ids.map((id) => xs.map((x) => {
      const v = acc.get(id).get(x);
      return v && v[1] ? v[0] / v[1] : null;
    }));
    this.latency.draw(ids.map((id) => ({ label: id, color: colorOf(chain, id) })), [xs, ...ys]);
  }

  /** race points (newHeads) → stacked share of races won per provider per minute. */
  renderWins(chain, providers, points) {
    const heads = (points || []).filter((p) => !p.event || p.event === "newHeads");
    if (!heads.length) return this.wins.empty("No races yet — providers race every new head over WebSocket.");
    const xs = [...new Set(heads.map((p) => p.ts))].sort((a, b) => a - b);
    const ids = orderProviders(providers, heads);
    const wins = new Map(ids.map((id) => [id, new Map()]));
    for (const p of heads) wins.get(p.provider).set(p.ts, (wins.get(p.provider).get(p.ts) || 0) + (p.wins || 0));
    const totals = xs.map((x) => ids.reduce((s, id) => s + (wins.get(id).get(x) || 0), 0));
    const shares = ids.map((id) => xs.map((x, i) => (totals[i] ? ((wins.get(id).get(x) || 0) / totals[i]) * 100 : null)));
    const stacked = [];
    let below = xs.map(() => 0);
    for (const s of shares) {
      below = s.map((v, i) => (v == null ? below[i] : below[i] + v));
      stacked.push(below.slice());
    }
    const colors = ids.map((id) => colorOf(chain, id));
    const bands = ids.slice(1).map((_, i) => ({ series: [i + 2, i + 1], fill: tint(colors[i + 1], 0.35) }));
    const fills = [tint(colors[0], 0.35)];
    this.wins.draw(ids.map((id, i) => ({ label: id, color: colors[i] })), [xs, ...stacked], {
      bands,
      fills,
      values: (si, idx) => {
        const v = idx == null ? null : shares[si - 1][idx];
        return v == null ? "—" : v.toFixed(0) + " %";
      },
    });
  }
}

function orderProviders(providers, points) {
  const ids = [...(providers || [])];
  for (const p of points) if (!ids.includes(p.provider)) ids.push(p.provider);
  return ids.filter((id) => points.some((p) => p.provider === id));
}
