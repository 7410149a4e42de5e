// The chain view's tables: the racing leaderboard and the provider × method performance matrix.

import { BREAKER_LABEL, breakerClass, colorOf, fill, fmt, h, heat } from "./lib.js";

const previousRanks = new Map(); // chain → Map(provider → rank)
const movedAt = new Map(); // chain/provider → [direction, time]

/** ranked: /leaderboard's `ranked`; chain: the overview entry (breakers, providers). */
export function renderLeaderboard(table, chainName, ranked, chain, onProvider) {
  if (!ranked || !ranked.length) {
    fill(table, h("tbody", h("tr", h("td.empty", { colspan: 9 }, "Waiting for the first races…"))));
    return;
  }
  const before = previousRanks.get(chainName) || new Map();
  const now = performance.now();
  const maxScore = Math.max(...ranked.map((r) => r.score || 0), 0.0001);
  const rows = ranked.map((r) => {
    const was = before.get(r.provider);
    if (was != null && was !== r.rank) movedAt.set(chainName + "/" + r.provider, [was > r.rank ? "up" : "down", now]);
    const moved = movedAt.get(chainName + "/" + r.provider);
    const arrow = moved && now - moved[1] < 4000 ? h("span.move." + moved[0], moved[0] === "up" ? "▲" : "▼") : null;
    const breaker = chain && chain.breakers ? chain.breakers[r.provider] : null;
    const stalled = !!(chain && chain.providers_stalled && chain.providers_stalled.includes(r.provider));
    const race = r.race || {};
    const rpc = r.rpc || {};
    return h("tr", { "data-provider": r.provider, class: breaker === "open" ? "row-down" : null },
      h("td.rank", h("span.rank-n", String(r.rank)), arrow),
      h("td.provider-cell",
        h("button.provider-link", { type: "button", onclick: () => onProvider(r.provider), title: "Provider details" },
          h("i.swatch", { style: `background:${colorOf(chainName, r.provider)}` }),
          r.provider),
        breaker && breaker !== "closed"
          ? h("span.pill.sm." + breakerClass(breaker), { "data-breaker": breaker }, BREAKER_LABEL[breaker] || breaker)
          : null,
        stalled ? h("span.pill.sm.bad", { "data-stalled": "true", title: "Its head has not changed for the stall threshold" }, "stalled") : null),
      h("td.score", h("div.scorebar", h("i", { style: `width:${Math.max(2, ((r.score || 0) / maxScore) * 100)}%` })),
        h("span.num", fmt.num(r.score, 2))),
      h("td.num", fmt.pct(race.win_rate, 0)),
      h("td.num.opt", { title: race.delay_p90_ms != null ? `p90 ${fmt.ms(race.delay_p90_ms)}` : null },
        race.delay_p50_ms != null ? fmt.ms(race.delay_p50_ms) : "—"),
      h("td.num.opt", fmt.int(race.races)),
      h("td.num.opt", { class: race.missed ? "warn-text" : null }, fmt.int(race.missed)),
      h("td.num", fmt.ms(rpc.p50_ms)),
      h("td.num", { class: rpc.success_rate != null && rpc.success_rate < 0.99 ? "bad-text" : null }, fmt.pct(rpc.success_rate)));
  });
  previousRanks.set(chainName, new Map(ranked.map((r) => [r.provider, r.rank])));
  fill(table,
    h("thead", h("tr",
      h("th", "#"), h("th", "Provider"), h("th", { title: "Leaderboard score: what the leaderboard strategy routes by" }, "Score"),
      h("th.num", { title: "Share of newHeads races won" }, "Wins"),
      h("th.num.opt", { title: "Head delay: how far behind the first arrival this provider delivers new heads, median over the window (a win counts 0)" }, "Delay p50"),
      h("th.num.opt", "Races"), h("th.num.opt", { title: "Events this provider never delivered" }, "Missed"),
      h("th.num", { title: "Median JSON-RPC latency" }, "p50"), h("th.num", "Success"))),
    h("tbody", rows));
}

/** The /methods matrix: colours rank each method column from best (green) to worst (red). */
export function renderMatrix(table, chainName, data, onProvider) {
  if (!data || !data.methods || !data.methods.length) {
    fill(table, h("tbody", h("tr", h("td.empty", "No requests in the window yet — start the load simulator to fill it."))));
    return;
  }
  const { providers, methods, cells } = data;
  const ranges = {};
  for (const m of methods) {
    const vals = providers.map((p) => cells[p] && cells[p][m] && cells[p][m].p50_ms).filter((v) => v != null && v > 0);
    ranges[m] = vals.length ? [Math.log(Math.min(...vals)), Math.log(Math.max(...vals))] : null;
  }
  const head = h("thead", h("tr", h("th", "Provider"), methods.map((m) => h("th.num", { title: m }, m.replace(/^eth_/, "")))));
  const body = h("tbody", providers.map((p) => h("tr",
    h("td.provider-cell", h("button.provider-link", { type: "button", onclick: () => onProvider(p) },
      h("i.swatch", { style: `background:${colorOf(chainName, p)}` }), p)),
    methods.map((m) => {
      const c = cells[p] && cells[p][m];
      if (!c || !c.count) return h("td.cell.none", "—");
      const r = ranges[m];
      const t = r && r[1] > r[0] && c.p50_ms > 0 ? (Math.log(c.p50_ms) - r[0]) / (r[1] - r[0]) : 0;
      const failing = c.success_rate != null && c.success_rate < 0.99;
      const bg = failing ? heat(1, 0.3) : heat(t);
      const best = r && r[1] > r[0] && t === 0;
      const worst = r && r[1] > r[0] && t === 1;
      return h("td.cell", { style: `background:${bg}`, title: `${p} · ${m}\n${fmt.int(c.count)} requests\np50 ${fmt.ms(c.p50_ms)} · p90 ${fmt.ms(c.p90_ms)} · p99 ${fmt.ms(c.p99_ms)}\nsuccess ${fmt.pct(c.success_rate, 2)}` },
        h("div.cell-lat", h("b", fmt.ms(c.p50_ms)), h("span.muted", " / " + fmt.ms(c.p99_ms))),
        h("div.cell-sub", { class: failing ? "bad-text" : null }, fmt.pct(c.success_rate), best ? h("span.tag.ok.sm", "best") : null, worst ? h("span.tag.bad.sm", "worst") : null));
    }))));
  fill(table, head, body);
}

/** "How far behind the first arrival": each provider's head delay (wins count 0), p50 bar and p90 mark. */
export function renderMargins(el, chainName, ranked) {
  const rows = (ranked || []).filter((r) => r.race && r.race.races);
  if (!rows.length) {
    el.replaceChildren();
    return;
  }
  const p50 = (r) => r.race.delay_p50_ms || 0;
  const p90 = (r) => r.race.delay_p90_ms || 0;
  const sorted = rows.slice().sort((a, b) => p50(a) - p50(b) || p90(a) - p90(b));
  const max = Math.max(1, ...sorted.map(p90));
  fill(el,
    h("h3", { title: "How far behind the first arrival each provider delivers new heads; a win counts 0" },
      "Head delay behind the first arrival (p50 bar, p90 mark)"),
    sorted.map((r) => h("div.margin-row", { title: `p50 ${fmt.ms(p50(r))} · p90 ${fmt.ms(p90(r))} · wins ${fmt.pct(r.race.win_rate, 0)}` },
      h("span.ellipsis", h("i.swatch", { style: `background:${colorOf(chainName, r.provider)};margin-right:6px` }), r.provider),
      h("div.bar",
        h("i", { style: `width:${(p50(r) / max) * 100}%;background:${colorOf(chainName, r.provider)}` }),
        p90(r) ? h("b.p90-mark", { style: `left:${(p90(r) / max) * 100}%` }) : null),
      h("span.num", p50(r) || p90(r) ? "+" + fmt.ms(p50(r)) + " / " + fmt.ms(p90(r)) : "first"))));
}
