// The live event feed: breaker transitions, failovers, reconnects, reorgs, faults; races grouped per batch.

import { fmt, h } from "./lib.js";

const MAX_ITEMS = 120;

const KIND = {
  race: ["race", "info"],
  failover: ["failover", "warn"],
  breaker: ["breaker", "bad"],
  ws_connect: ["ws", "ok"],
  ws_disconnect: ["ws", "warn"],
  reorg: ["reorg", "warn"],
  cooldown: ["429", "warn"],
  restart: ["restart", "bad"],
  reload: ["config", "info"],
  providers_changed: ["config", "info"],
  chain_id_mismatch: ["chain id", "bad"],
  stalled: ["stalled", "bad"],
  recovered: ["stalled", "ok"],
  fault: ["fault", "fault"],
  simulator: ["load", "info"],
};

function describe(e) {
  const p = e.provider ? e.provider : "";
  switch (e.kind) {
    case "failover":
      return [`Failover from `, h("b", p), ` — ${e.reason || "error"}${e.method ? " on " + e.method : ""}`];
    case "breaker": {
      const tone = e.new === "open" ? "bad" : e.new === "closed" ? "ok" : "warn";
      return [h("b", p), ` breaker `, e.old, ` → `, h("span." + tone, String(e.new).replace("_", "-")),
        e.reason ? h("span.muted", ` · ${e.reason}`) : null];
    }
    case "ws_connect":
      return [h("b", p), " WebSocket connected"];
    case "ws_disconnect":
      return [h("b", p), " WebSocket lost", e.reason ? h("span.muted", ` · ${e.reason}`) : null];
    case "reorg":
      return [`Reorg at `, fmt.block(e.number ?? e.fork_number), e.depth ? ` · depth ${e.depth}` : ""];
    case "cooldown":
      return [h("b", p), ` rate-limited — cooling down ${fmt.num(e.seconds)} s`];
    case "restart":
      return [`Task ${e.task} restarted (${e.error || "error"}, ×${e.restarts})`];
    case "reload":
      return ["Configuration reloaded"];
    case "providers_changed":
      return [`Providers changed: +${(e.added || []).join(", ") || "none"} −${(e.removed || []).join(", ") || "none"}`];
    case "stalled":
      return [p ? h("b", p) : "Chain", ` heads stalled — no new head for ${fmt.num(e.silent_s)} s`,
        h("span.muted", ` · threshold ${fmt.num(e.stall_after_s)} s`)];
    case "recovered":
      return [p ? h("b", p) : "Chain", ` heads back after ${fmt.num(e.stalled_s)} s stalled`];
    case "chain_id_mismatch":
      return [h("b", p), ` serves chain ${e.got}, expected ${e.expected} — excluded`];
    case "fault":
      if (e.action === "drop") return [h("b", p), ` connections dropped (${e.dropped})`];
      if (e.action === "clear") return [h("b", p), " fault cleared"];
      return [h("b", p), " fault: ", faultLabel(e)];
    case "simulator":
      return e.action === "start"
        ? [`Load started: ${fmt.int(e.rate)} req/s over ${String(e.transport).toUpperCase()}` +
            (e.subscribers ? `, ${fmt.int(e.subscribers)} subscribers` : "") + ` for ${fmt.int(e.duration_s)} s`]
        : [`Load stopped after ${fmt.int(e.sent)} requests`];
    default:
      return [e.kind + (p ? " " + p : "")];
  }
}

/** What each lie of a `lie` fault does, in words (the keys are `Fault.lie`). */
export const LIE_LABELS = {
  block_hash: "wrong block hash",
  null_receipt: "null receipt",
  empty_logs: "empty logs",
  stale_head: "stale head",
  future_head: "future head",
};

function lieLabel(f) {
  const kind = f.lie || "block_hash";
  const what = LIE_LABELS[kind] || String(kind).replace("_", " ");
  const blocks = f.lie_blocks != null ? fmt.int(f.lie_blocks) : "1000";
  if (f.lie === "stale_head") return `lie: ${what} (−${blocks} blocks)`;
  if (f.lie === "future_head") return `lie: ${what} (+${blocks} blocks)`;
  return `lie: ${what}`;
}

export function faultLabel(f) {
  const lat = f.latency_ms ? `+${fmt.int(f.latency_ms)} ms` : "";
  const prob = f.probability != null && f.probability < 1 ? ` ${Math.round(f.probability * 100)} %` : "";
  switch (f.mode) {
    case "none": return lat || "none";
    case "http_status": return `HTTP ${f.status}${prob}` + (lat ? " · " + lat : "");
    case "lie": return lieLabel(f) + prob + (lat ? " · " + lat : "");
    default: return String(f.mode).replace("_", " ") + prob + (lat ? " · " + lat : "");
  }
}

/** One feed (overview: every chain; chain view: one chain). */
export class Feed {
  constructor(el, { chain = null, showChain = false } = {}) {
    this.el = el;
    this.chain = chain;
    this.showChain = showChain;
    this.races = true;
    this.seq = 0; // the last event shown (events arrive again after a reconnect)
    this.groups = new Map();
  }

  setChain(chain) {
    if (chain === this.chain) return;
    this.chain = chain;
    this.el.replaceChildren();
    this.groups = new Map();
    this.seq = 0;
  }

  /** Add a batch (oldest first). Race results are folded into one line per chain per ~10 s. */
  push(events) {
    const touched = new Set();
    for (const e of events) {
      if (e.seq <= this.seq) continue;
      this.seq = e.seq;
      if (this.chain && e.chain && e.chain !== this.chain) continue;
      if (e.kind !== "race") this.el.prepend(this.line(e, describe(e)));
      else if (this.races) touched.add(this.addRace(e));
    }
    for (const group of touched) group.render();
    while (this.el.childElementCount > MAX_ITEMS) this.el.lastElementChild.remove();
  }

  addRace(e) {
    let g = this.groups.get(e.chain);
    if (!g || e.ts - g.since > 10 || !g.el.isConnected || !this.onTop(g.el)) {
      g = { since: e.ts, ts: e.ts, wins: new Map(), margins: [], el: h("li.feed-item", { "data-kind": "race" }) };
      g.render = () => {
        const wins = [...g.wins.entries()].sort((a, b) => b[1] - a[1]);
        const margins = g.margins.slice().sort((a, b) => a - b);
        const median = margins.length ? margins[Math.floor(margins.length / 2)] : null;
        const text = ["wins ", wins.map(([p, n], i) => [i ? " · " : "", h("b", p), " " + fmt.int(n)]),
          median != null ? h("span.muted", ` · median margin ${fmt.ms(median)}`) : null];
        const fresh = this.line({ kind: "race", chain: e.chain, ts: g.ts }, text);
        if (g.el.isConnected) g.el.replaceWith(fresh);
        g.el = fresh;
      };
      this.el.prepend(g.el);
      this.groups.set(e.chain, g);
    }
    g.ts = e.ts;
    g.wins.set(e.winner, (g.wins.get(e.winner) || 0) + 1);
    if (e.margin_ms != null) g.margins.push(e.margin_ms);
    return g;
  }

  /** Only race lines are above `el` (so updating it in place keeps the feed in time order). */
  onTop(el) {
    for (let x = el.previousElementSibling; x; x = x.previousElementSibling) if (x.dataset.kind !== "race") return false;
    return true;
  }

  line(e, text) {
    const [label, tone] = KIND[e.kind] || [e.kind, "info"];
    return h("li.feed-item", { "data-kind": e.kind },
      h("time", { datetime: new Date(e.ts * 1000).toISOString(), "data-ts": e.ts, title: new Date(e.ts * 1000).toLocaleString() }, fmt.clock(e.ts)),
      h("span.tag." + tone, label),
      h("span.feed-text", this.showChain && e.chain ? h("span.chain-chip", e.chain) : null, ...text));
  }
}
