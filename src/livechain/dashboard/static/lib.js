// Small shared helpers: formatting, DOM building, the JSON API with the admin token.

const nf0 = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
const nf1 = new Intl.NumberFormat("en-US", { minimumFractionDigits: 1, maximumFractionDigits: 1 });
const nf2 = new Intl.NumberFormat("en-US", { maximumFractionDigits: 2 });

export const fmt = {
  int: (n) => (n == null ? "—" : nf0.format(n)),
  num: (n, digits = 1) => (n == null ? "—" : (digits === 1 ? nf1 : nf2).format(n)),
  block: (n) => (n == null ? "—" : "#" + nf0.format(n)),
  rate: (n) => (n == null ? "—" : n >= 100 ? nf0.format(n) : nf1.format(n)),
  ms(n) {
    if (n == null) return "—";
    if (n >= 10000) return nf1.format(n / 1000) + " s";
    if (n >= 100) return nf0.format(n) + " ms";
    return nf1.format(n) + " ms";
  },
  pct(x, digits = 1) {
    if (x == null) return "—";
    const v = x * 100;
    if (v >= 99.95 && v < 100) return "99.9 %";
    return (digits ? v.toFixed(digits) : Math.round(v)) + " %";
  },
  age(s) {
    if (s == null) return "—";
    if (s < 10) return nf1.format(s) + " s";
    if (s < 90) return nf0.format(s) + " s";
    if (s < 5400) return nf0.format(s / 60) + " min";
    return nf1.format(s / 3600) + " h";
  },
  ago(ts) {
    const s = Math.max(0, Date.now() / 1000 - ts);
    if (s < 2) return "now";
    if (s < 60) return Math.floor(s) + " s ago";
    if (s < 3600) return Math.floor(s / 60) + " min ago";
    return new Date(ts * 1000).toLocaleTimeString();
  },
  clock: (ts) => new Date(ts * 1000).toLocaleTimeString([], { hour12: false }),
};

/** h("div.card#x", {onclick}, children...) — a tiny element builder (text is always escaped). */
export function h(spec, attrs, ...children) {
  const [tagAndClasses, id] = spec.split("#");
  const [tag, ...classes] = tagAndClasses.split(".");
  const el = document.createElement(tag || "div");
  if (classes.length) el.className = classes.join(" ");
  if (id) el.id = id;
  if (attrs && (typeof attrs !== "object" || attrs instanceof Node || Array.isArray(attrs))) {
    children.unshift(attrs);
    attrs = null;
  }
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className += (el.className ? " " : "") + v;
    else if (k === "style") el.style.cssText = v;
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c == null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export const $ = (sel, root = document) => root.querySelector(sel);

/** Replace an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// ------------------------------------------------------------------------------------------- API

const TOKEN_KEY = "livechain.adminToken";
export const token = {
  get: () => localStorage.getItem(TOKEN_KEY) || "",
  set: (t) => (t ? localStorage.setItem(TOKEN_KEY, t) : localStorage.removeItem(TOKEN_KEY)),
};

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export async function api(path, { method = "GET", body } = {}) {
  const headers = {};
  const t = token.get();
  if (t) headers.authorization = "Bearer " + t;
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  let data = null;
  try {
    data = await res.json();
  } catch {
    data = null;
  }
  if (!res.ok) throw new ApiError(res.status, (data && data.error) || `HTTP ${res.status}`);
  return data;
}

// ------------------------------------------------------------------------------------------- colours

const PALETTE = ["#6366f1", "#10b981", "#f59e0b", "#ef4444", "#06b6d4", "#a855f7", "#84cc16", "#ec4899"];
const providerLists = new Map(); // chain → configured provider ids (from the overview)

/** Remember each chain's provider order: a provider's colour is its position there, everywhere. */
export function setProviders(chain, providers) {
  providerLists.set(chain, providers || []);
}

/** A stable colour per provider: its index in the chain's provider list (else a hash of its id). */
export function colorOf(chain, provider) {
  const i = (providerLists.get(chain) || []).indexOf(provider);
  if (i >= 0) return PALETTE[i % PALETTE.length];
  let hash = 0;
  for (const ch of provider) hash = (hash * 31 + ch.charCodeAt(0)) >>> 0;
  return PALETTE[hash % PALETTE.length];
}

/** Green (best) → amber → red (worst) for t in [0, 1], as an rgba background with some alpha. */
export function heat(t, alpha = 0.22) {
  const stops = [[16, 185, 129], [245, 158, 11], [239, 68, 68]];
  const x = Math.min(1, Math.max(0, t)) * 2;
  const i = Math.min(1, Math.floor(x));
  const f = x - i;
  const c = stops[i].map((v, k) => Math.round(v + (stops[i + 1][k] - v) * f));
  return `rgba(${c[0]}, ${c[1]}, ${c[2]}, ${alpha})`;
}

export const BREAKER_LABEL = { closed: "closed", open: "open", half_open: "half-open" };
export function breakerClass(state) {
  return state === "open" ? "bad" : state === "half_open" ? "warn" : "ok";
}
