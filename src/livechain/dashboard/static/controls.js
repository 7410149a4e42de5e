// Controls: the admin token, the load simulator and fault injection. All changes are POST/PUT/DELETE
// with the admin token (or allowed without it in demo mode); state comes back over the live push.

import { $, api, colorOf, fill, fmt, h, token } from "./lib.js";
import { LIE_LABELS, faultLabel } from "./feed.js";

const DEFAULT_MIX = { eth_blockNumber: 4, eth_getBalance: 2, eth_call: 2, eth_getLogs: 1 };

export class Controls {
  constructor({ onChange }) {
    this.onChange = onChange;
    this.controls = { allowed: false, demo: false, token_configured: false };
    this.faults = {};
    this.faultsEnabled = false;
    this.limits = null;
    this.chain = null;
    this.errorShare = 1;
    this.bindToken();
    this.bindSimulator();
  }

  // ------------------------------------------------------------------ token

  bindToken() {
    const pop = $("#token-pop");
    $("#lock").addEventListener("click", (e) => {
      e.stopPropagation();
      pop.hidden = !pop.hidden;
      if (!pop.hidden) $("#token").focus();
    });
    document.addEventListener("click", (e) => {
      if (!pop.hidden && !pop.contains(e.target)) pop.hidden = true;
    });
    $("#token-form").addEventListener("submit", (e) => {
      e.preventDefault();
      token.set($("#token").value.trim());
      $("#token").value = "";
      pop.hidden = true;
      this.load();
    });
    $("#token-forget").addEventListener("click", () => {
      token.set("");
      pop.hidden = true;
      this.load();
    });
  }

  renderLock() {
    const c = this.controls;
    const lock = $("#lock");
    lock.dataset.state = c.demo ? "demo" : c.authorized ? "admin" : "read";
    $("#lock-shackle").setAttribute("d", c.allowed ? "M5 7V5a3 3 0 0 1 6 0" : "M5 7V5a3 3 0 0 1 6 0v2");
    $("#lock-text").textContent = c.demo ? "Demo · controls on" : c.authorized ? "Admin" : token.get() ? "Token rejected" : "Read-only";
    $("#token-hint").textContent = c.demo
      ? "Demo mode: the simulator and fault controls work without a token."
      : c.token_configured
        ? "Paste the admin token (LIVECHAIN_ADMIN_TOKEN) to use the load simulator and fault controls. It stays in this browser."
        : "Controls are disabled on this server: start Livechain with LIVECHAIN_ADMIN_TOKEN set.";
  }

  async load() {
    try {
      const [sim, faults] = await Promise.all([api("/api/simulator"), api("/api/faults")]);
      this.controls = sim.controls;
      this.limits = sim.limits;
      this.faultsEnabled = faults.enabled;
      this.faults = faults.faults;
      this.applyLimits();
    } catch (err) {
      console.warn("controls unavailable:", err.message);
    }
    this.renderLock();
    this.renderFaults();
    this.renderSimForm();
    this.onChange();
  }

  async refreshFaults() {
    if (!this.faultsEnabled) return;
    try {
      const data = await api("/api/faults");
      this.faults = data.faults;
      this.renderFaults();
      this.onChange();
    } catch {
      /* transient: the next change or tick retries */
    }
  }

  setChain(chain) {
    this.chain = chain;
    this.renderFaults();
    this.renderSimForm();
  }

  // ------------------------------------------------------------------ simulator

  bindSimulator() {
    const mix = $("#sim-mix");
    for (const [m, w] of Object.entries(DEFAULT_MIX)) {
      mix.append(h("label.mix-item", h("span.mono", m), h("input", { type: "number", min: 0, max: 100, step: 1, value: w, "data-method": m, "aria-label": `${m} weight` })));
    }
    $("#sim-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.startSim();
    });
    $("#sim-stop").addEventListener("click", () => this.stopSim());
  }

  applyLimits() {
    if (!this.limits) return;
    $("#sim-rate").max = this.limits.max_rate;
    $("#sim-subs").max = this.limits.max_subscribers;
    $("#sim-duration").max = this.limits.max_duration_s;
  }

  renderSimForm() {
    const allowed = this.controls.allowed;
    for (const el of $("#sim-form").querySelectorAll("input, button")) el.disabled = !allowed;
    $("#sim-form").title = allowed ? "" : "Read-only: paste the admin token to start load";
  }

  async startSim() {
    const mix = {};
    for (const input of $("#sim-mix").querySelectorAll("input")) mix[input.dataset.method] = Number(input.value) || 0;
    const body = {
      action: "start",
      chain: this.chain,
      rate: Number($("#sim-rate").value),
      duration_s: Number($("#sim-duration").value),
      subscribers: Number($("#sim-subs").value),
      transport: $("#sim-form").querySelector("input[name=transport]:checked").value,
      mix,
    };
    await this.act(() => api("/api/simulator", { method: "POST", body }), "#sim-error");
  }

  async stopSim() {
    await this.act(() => api("/api/simulator", { method: "POST", body: { action: "stop", chain: this.chain } }), "#sim-error");
  }

  /** The run of the selected chain, from the live push. */
  renderSimStatus(run) {
    const running = !!(run && run.running);
    const badge = $("#sim-state");
    badge.textContent = running ? "running" : run ? (run.stop_reason === "duration elapsed" ? "finished" : "stopped") : "idle";
    badge.className = "badge " + (running ? "ok" : "");
    $("#sim-start").hidden = running;
    $("#sim-stop").hidden = !running;
    $("#sim-stop").disabled = !this.controls.allowed;
    const box = $("#sim-status");
    if (!run) {
      box.hidden = true;
      return;
    }
    box.hidden = false;
    const s = run.settings;
    if (running && this.shownRun !== run.started_at && !$("#sim-form").contains(document.activeElement)) {
      this.shownRun = run.started_at; // show the running run's settings (it may have been started elsewhere)
      $("#sim-rate").value = s.rate;
      $("#sim-duration").value = s.duration_s;
      $("#sim-subs").value = s.subscribers;
      $("#sim-form").querySelector(`input[name=transport][value=${s.transport}]`).checked = true;
      for (const input of $("#sim-mix").querySelectorAll("input")) input.value = s.mix[input.dataset.method] || 0;
    }
    const progress = running ? Math.min(100, (run.elapsed_s / s.duration_s) * 100) : 100;
    const subs = run.subscribers || {};
    fill(box,
      h("div.progress", { title: `${fmt.int(run.elapsed_s)} s of ${fmt.int(s.duration_s)} s` }, h("i", { style: `width:${progress}%` })),
      h("div.sim-line.muted.small",
        `${fmt.int(s.rate)} req/s target · ${String(s.transport).toUpperCase()}`,
        running ? ` · ${fmt.age(run.remaining_s)} left` : run.stop_reason ? ` · ${run.stop_reason}` : ""),
      h("div.stat-grid",
        stat("Achieved", fmt.rate(run.rate), "req/s", "sim-rate-achieved"),
        stat("Sent", fmt.int(run.sent)),
        stat("OK", fmt.int(run.ok)),
        stat("Errors", fmt.int(run.errors), null, null, run.errors ? "bad-text" : null),
        stat("p50", fmt.ms(run.p50_ms)),
        stat("p99", fmt.ms(run.p99_ms)),
        s.subscribers ? stat("Subscribers", `${fmt.int(subs.connected)} / ${fmt.int(subs.target)}`) : null,
        s.subscribers ? stat("Notifications", fmt.int(subs.notifications)) : null,
        run.skipped ? stat("Skipped", fmt.int(run.skipped), null, null, "warn-text") : null),
      run.last_error && (run.errors || subs.errors) ? h("p.muted.small.ellipsis", { title: run.last_error }, "Last error: " + run.last_error) : null);
  }

  // ------------------------------------------------------------------ faults

  renderFaults() {
    const panel = $("#panel-faults");
    const rows = Object.values(this.faults || {}).filter((f) => f.chain === this.chain);
    panel.hidden = !this.faultsEnabled || !rows.length;
    if (panel.hidden) return;
    const share = h("select", { "aria-label": "Share of requests answered with the error or the lie", onchange: (e) => (this.errorShare = Number(e.target.value)) },
      [1, 0.5, 0.2].map((v) => h("option", { value: v, selected: v === this.errorShare ? true : null }, `${v * 100} % of requests`)));
    fill($("#faults"),
      h("div.fault-opts.small.muted", "HTTP errors and lies hit ", share),
      rows.map((f) => this.faultRow(f.chain, f.provider)));
  }

  /** The controls for one provider (also used in the provider drawer). */
  faultRow(chain, provider) {
    const f = this.faults && this.faults[chain + "/" + provider];
    if (!this.faultsEnabled || !f) return null;
    const allowed = this.controls.allowed;
    const path = `/api/faults/${encodeURIComponent(chain)}/${encodeURIComponent(provider)}`;
    const cur = f.fault;
    const set = (changes) => this.act(() => api(path, { method: "PUT", body: { ...cur, ...changes } }), "#fault-error");
    const btn = (label, title, onclick, cls = "") =>
      h("button.btn.sm" + cls, { type: "button", title: allowed ? title : "Read-only: paste the admin token", disabled: !allowed, onclick, "data-action": label }, label);
    // "Lie": the provider answers, but rewrites the answer (HTTP only; WebSockets are left alone)
    const lie = h("select.lie-select", {
      "aria-label": "Make the provider lie", "data-action": "Lie", disabled: !allowed,
      title: allowed ? "The provider answers, but lies (HTTP requests only)" : "Read-only: paste the admin token",
      onchange: (e) => e.target.value && set({ mode: "lie", lie: e.target.value, probability: this.errorShare }),
    }, h("option", { value: "", selected: true }, "Lie…"),
      Object.entries(LIE_LABELS).map(([value, label]) => h("option", { value }, label)));
    const injected = f.injected;
    return h("div.fault-row", { "data-provider": provider },
      h("div.fault-name",
        h("i.swatch", { style: `background:${colorOf(chain, provider)}` }), h("b", provider),
        h("span.badge" + (injected ? ".bad" : ""), { "data-fault": cur.mode }, faultLabel(cur))),
      h("div.fault-btns",
        btn("+200 ms", "Add 200 ms of latency to every reply", () => set({ latency_ms: (cur.latency_ms || 0) + 200 })),
        btn("502", "Answer HTTP requests with 502", () => set({ mode: "http_status", status: 502, probability: this.errorShare, retry_after: null })),
        btn("429", "Answer HTTP requests with 429 (rate limited)", () => set({ mode: "http_status", status: 429, probability: this.errorShare, retry_after: 5 })),
        btn("Stall", "Requests reach the provider, no reply comes back", () => set({ mode: "stall", probability: 1 })),
        btn("Blackhole", "Accept connections, never answer", () => set({ mode: "blackhole", probability: 1 })),
        lie,
        btn("Drop", "Abort every live connection (clients reconnect)", () => this.act(() => api(path + "/drop", { method: "POST" }), "#fault-error")),
        btn("Clear", "Back to the provider's normal behaviour", () => this.act(() => api(path, { method: "DELETE" }), "#fault-error"), ".ghost")));
  }

  async act(fn, errorSel) {
    const err = $(errorSel);
    err.hidden = true;
    try {
      await fn();
    } catch (e) {
      err.textContent = e.status === 401 || e.status === 403 ? `Not allowed: ${e.message}` : e.message;
      err.hidden = false;
    }
    await this.refreshFaults();
  }
}

function stat(label, value, unit, testid, cls) {
  return h("div.stat", h("span.muted", label), h("b", { class: cls, "data-testid": testid }, value, unit ? h("small", " " + unit) : null));
}
