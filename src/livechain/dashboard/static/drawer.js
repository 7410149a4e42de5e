// Provider detail: a drawer with breaker state and history, head lag, per-method latency, last errors.

import { $, BREAKER_LABEL, api, breakerClass, colorOf, fill, fmt, h } from "./lib.js";

export class Drawer {
  constructor({ faultRow }) {
    this.el = $("#drawer");
    this.scrim = $("#scrim");
    this.body = $("#drawer-body");
    this.faultRow = faultRow; // (chain, provider) → element | null
    this.chain = null;
    this.provider = null;
    this.timer = null;
    $("#drawer-close").addEventListener("click", () => this.close());
    this.scrim.addEventListener("click", () => this.close());
    document.addEventListener("keydown", (e) => e.key === "Escape" && this.close());
  }

  get isOpen() {
    return this.provider != null;
  }

  open(chain, provider) {
    this.chain = chain;
    this.provider = provider;
    $("#drawer-title").textContent = provider;
    $("#drawer-chain").textContent = chain;
    fill(this.body, h("p.muted", "Loading…"));
    this.el.classList.add("open");
    this.el.setAttribute("aria-hidden", "false");
    this.scrim.hidden = false;
    clearInterval(this.timer);
    this.refresh();
    this.timer = setInterval(() => this.refresh(), 2000);
  }

  close() {
    if (!this.isOpen) return;
    clearInterval(this.timer);
    this.provider = null;
    this.el.classList.remove("open");
    this.el.setAttribute("aria-hidden", "true");
    this.scrim.hidden = true;
  }

  async refresh() {
    const { chain, provider } = this;
    if (!provider) return;
    let data, route;
    try {
      [data, route] = await Promise.all([
        api(`/api/chains/${encodeURIComponent(chain)}/providers`),
        api(`/api/chains/${encodeURIComponent(chain)}/route?method=eth_call`).catch(() => null),
      ]);
    } catch (err) {
      fill(this.body, h("p.form-error", `Could not load ${provider}: ${err.message}`));
      return;
    }
    if (provider !== this.provider) return;
    const p = (data.providers || []).find((x) => x.id === provider);
    if (!p) {
      fill(this.body, h("p.muted", `${provider} is no longer configured on ${chain}.`));
      return;
    }
    this.render(data, p, route);
  }

  render(data, p, route) {
    const br = p.breaker || {};
    const ws = p.ws || null;
    const race = (p.races && p.races.newHeads) || null;
    const methods = Object.entries(p.methods || {}).sort((a, b) => b[1].count - a[1].count);
    const history = (p.breaker_history || []).slice(-12).reverse();
    const errors = (p.last_errors || []).slice().reverse();
    const spend = p.spend || null;
    const caps = p.capabilities || {};
    const unsupported = Object.entries(caps.unsupported || {});
    const out = route ? (route.excluded || []).find((e) => e.id === p.id) : null;
    const unit = spend && spend.unit === "money" ? (v) => (v > 0 && v < 1 ? v.toPrecision(3) : fmt.num(v, 2)) : (v) => fmt.int(v) + " u";
    const spent = (period) => spend ? period.client.requests + period.own.requests : 0;
    const scrollTop = this.body.scrollTop;
    fill(this.body,
      h("div.pills",
        h("span.pill." + breakerClass(br.http), { "data-breaker": br.http }, "breaker " + (BREAKER_LABEL[br.http] || br.http)),
        ws ? h("span.pill." + (ws.state === "ready" || ws.state === "open" ? "ok" : "warn"), "ws " + (ws.state || "?")) : h("span.pill", "no ws"),
        p.chain_id_ok === false ? h("span.pill.bad", "wrong chain id") : null,
        p.stalled ? h("span.pill.bad", { "data-stalled": "true" }, "head stalled") : null,
        p.cooling_down_s > 0 ? h("span.pill.warn", `cooling down ${fmt.num(p.cooling_down_s)} s`) : null,
        h("i.swatch.lg", { style: `background:${colorOf(this.chain, p.id)}` })),
      h("div.kv-grid",
        kv("Head", fmt.block(p.head)),
        kv("Lag", p.lag == null ? "—" : `${fmt.int(p.lag)} block${p.lag === 1 ? "" : "s"}`, p.lag > 2 ? "warn-text" : null),
        kv("Head age", fmt.age(p.head_age_s)),
        kv("In flight", fmt.int(p.inflight)),
        kv("Failures in a row", fmt.int(br.consecutive_failures)),
        kv("Breaker transitions", fmt.int(br.transitions)),
        kv("Races won", race ? `${fmt.int(race.wins)} / ${fmt.int(race.total)}` : "—"),
        kv("Head delay p50 / p90", race && race.delay_p50_ms != null ? `${fmt.ms(race.delay_p50_ms)} / ${fmt.ms(race.delay_p90_ms)}` : "—"),
        kv("Integrity failures", fmt.int(Object.values((p.integrity && p.integrity.failures) || {}).reduce((a, b) => a + b, 0)),
          p.integrity && Object.keys(p.integrity.failures || {}).length ? "bad-text" : null),
        kv("Quorum votes lost", fmt.int(Object.values(p.disagreements || {}).reduce((a, b) => a + b, 0))),
        kv("Missed events", race ? fmt.int(race.missed) : "—"),
        ws ? kv("WS reconnects", fmt.int(ws.connects != null ? Math.max(0, ws.connects - 1) : null)) : null),
      this.faultRow(this.chain, p.id),
      h("h3", "Spend and routing"),
      h("div.kv-grid", { "data-testid": "drawer-spend" },
        kv("Tier", p.tier || "—"),
        kv("Requests today", spend ? `${fmt.int(spent(spend.today))} (${fmt.int(spend.today.own.requests)} own)` : "—"),
        kv("Spend today", spend ? unit(spend.unit === "money" ? spend.today.client.money + spend.today.own.money
          : spend.today.client.units + spend.today.own.units) : "—"),
        kv("Budget left today", spend && spend.budget_left.day != null ? unit(spend.budget_left.day) : "no budget",
          spend && spend.exhausted ? "bad-text" : null),
        kv("Budget left this month", spend && spend.budget_left.month != null ? unit(spend.budget_left.month) : "no budget"),
        kv("eth_call routing", out ? "left out: " + out.reasons.join("; ") : route ? "eligible" : "—", out ? "warn-text" : null)),
      h("h3", "Capabilities"),
      h("div.kv-grid", { "data-testid": "drawer-capabilities" },
        kv("Archive", caps.archive == null ? "unknown" : caps.archive ? "yes" : `no (${fmt.int(caps.state_depth)} blocks)`),
        kv("eth_getLogs range", caps.logs_limit == null ? "no limit known" : fmt.int(caps.logs_limit) + (caps.logs_limit_learned ? " (learned)" : "")),
        kv("Batches", caps.batch == null ? "not tried" : caps.batch ? `yes (≥ ${fmt.int(caps.batch_limit)})` : "no"),
        kv("Unsupported methods", unsupported.length ? unsupported.map(([m, t]) => `${m} (since ${fmt.clock(t)})`).join(", ") : "none seen",
          unsupported.length ? "warn-text" : null),
        kv("Subscriptions refused", Object.keys(caps.subscriptions_refused || {}).join(", ") || "none")),
      h("h3", "Per-method latency"),
      methods.length
        ? h("div.scroll-x", h("table.table.compact",
          h("thead", h("tr", h("th", "Method"), h("th.num", "Requests"), h("th.num", "p50"), h("th.num", "p90"), h("th.num", "p99"), h("th.num", "Success"))),
          h("tbody", methods.map(([m, s]) => h("tr",
            h("td.mono", m), h("td.num", fmt.int(s.count)), h("td.num", fmt.ms(s.p50_ms)), h("td.num", fmt.ms(s.p90_ms)),
            h("td.num", fmt.ms(s.p99_ms)), h("td.num", { class: s.success_rate < 0.99 ? "bad-text" : null }, fmt.pct(s.success_rate)))))))
        : h("p.muted", "No requests in the window."),
      h("h3", "Breaker history"),
      history.length
        ? h("ol.timeline", history.map((t) => h("li",
          h("time", fmt.clock(t.ts)),
          h("span", t.old, " → ", h("b." + breakerClass(t.new) + "-text", BREAKER_LABEL[t.new] || t.new)),
          t.reason ? h("span.muted", " · " + t.reason) : null)))
        : h("p.muted", "No transitions — the breaker has stayed closed."),
      p.integrity && p.integrity.last
        ? h("p.bad-text", { "data-integrity": "last" }, `Last integrity failure (${fmt.clock(p.integrity.last.ts)}, ${p.integrity.last.method}): ${p.integrity.last.reason}`)
        : null,
      h("h3", "Last errors"),
      errors.length
        ? h("ol.errors", errors.map((e) => h("li", h("time", fmt.clock(e.ts)), h("span.tag.bad", e.kind || "error"), h("span.err-msg", e.message))))
        : h("p.muted", "None recorded."));
    this.body.scrollTop = scrollTop;
  }
}

function kv(label, value, cls) {
  return h("div.kv", h("span.muted", label), h("b", { class: cls }, value));
}
