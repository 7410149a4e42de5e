"""The probe's report: exit codes, the URL as it may be shown, and the two renderings (a terminal table and
JSON). The report is a plain dict (the JSON is its exact dump); both renderings go through the log redactor,
which knows the probed URLs, so a secret part of a URL can never reach the output."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import orjson

from livechain.log import REDACTOR

EXIT_OK = 0
EXIT_USAGE = 2  # bad arguments or config (argparse's own code for usage errors)
EXIT_UNREACHABLE = 3  # no JSON-RPC answer to eth_chainId over HTTP, or the --ws URL does not connect
EXIT_WRONG_CHAIN = 4  # eth_chainId (HTTP, or WebSocket) differs from --chain-id / the config chain's chain_id


def shown_url(url: str | None) -> str | None:
    """The URL without the parts that carry keys: scheme, host and port; a path or query becomes "/…",
    userinfo is dropped."""
    if url is None:
        return None
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<invalid URL>"
    if ":" in host:
        host = f"[{host}]"
    tail = "/…" if parts.path.strip("/") or parts.query or parts.fragment else ""
    return f"{parts.scheme}://{host}{port}{tail}"


def register_secrets(*urls: str | None) -> None:
    """Teach the log redactor the parts of `urls` that can carry keys (a URL with none is not a secret)."""
    for url in urls:
        if not url:
            continue
        try:
            user = urlsplit(url).username
        except ValueError:
            user = None
        if user or (shown_url(url) or "").endswith("/…"):
            REDACTOR.register_url(url, "probed")
        if user:
            REDACTOR.register(user, "<secret>")


def to_json(report: dict[str, Any]) -> str:
    return REDACTOR.scrub(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())


# ---------------------------------------------------------------------------------------------- table


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def _rows(rows: list[list[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [indent + "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths,
            strict=True))).rstrip() for r in rows]


def _identity(report: dict[str, Any]) -> list[str]:
    expected = report.get("expected_chain_id")
    chain = str(report.get("chain_id")) if report.get("chain_id") is not None else "unknown"
    if expected is not None:
        chain += f"  (expected {expected}: {'ok' if report.get('chain_id_ok') else 'WRONG'})"
    lines = [f"livechain probe {report['url']}" + (f"  ws {report['ws_url']}" if report.get("ws_url") else ""),
             f"  chain id         {chain}",
             f"  client version   {report.get('client_version') or '–'}",
             f"  head             {report.get('head') if report.get('head') is not None else '–'}"]
    if report.get("error"):
        lines.append(f"  error            {report['error']}")
    return lines


def _latency(latency: dict[str, Any]) -> list[str]:
    if not latency:
        return []
    rows = [["latency", "p50 ms", "p90 ms", "ok", "errors"]]
    for method, entry in latency.items():
        rows.append([method, _ms(entry["p50_ms"]), _ms(entry["p90_ms"]), f"{entry['ok']}/{entry['samples']}",
                     str(entry["errors"])])
    return ["", *_rows(rows)]


def _methods(methods: dict[str, Any]) -> list[str]:
    if not methods:
        return []
    supported = [m for m, e in methods.items() if e["status"] == "supported"]
    lines = ["", f"  methods          {len(supported)} of {len(methods)} supported"]
    for status in ("unsupported", "rate_limited", "skipped"):
        names = [m for m, e in methods.items() if e["status"] == status]
        if names:
            lines.append(f"    {status + ':':<15}{', '.join(names)}")
    other = [f"{m} ({e['status']})" for m, e in methods.items()
             if e["status"] not in ("supported", "unsupported", "rate_limited", "skipped")]
    if other:
        lines.append(f"    {'failed:':<15}{', '.join(other)}")
    return lines


def _archive(archive: dict[str, Any] | None) -> str:
    if archive is None:
        return "  archive          –"
    if archive.get("archive") is True:
        return "  archive          yes: state at block 1"
    if archive.get("archive") is False:
        return (f"  archive          no: state of the last {archive['state_depth']} blocks "
                f"(oldest: block {archive['oldest_state_block']})")
    return f"  archive          unknown: {archive.get('note', '')}"


def _limits(report: dict[str, Any]) -> list[str]:
    lines = [_archive(report.get("archive"))]
    logs = report.get("logs")
    if logs is not None:
        lines.append(f"  eth_getLogs      {'limit ' if logs.get('found') else ''}{logs.get('note', '–')}")
    batch = report.get("batch")
    if batch is not None:
        if batch.get("supported") is False:
            text = batch.get("note", "not supported")
        elif batch.get("refused_at") is not None:
            text = f"limit {batch.get('note')}; refused at {batch['refused_at']}: {batch['tried'][-1]['detail']}"
        else:
            text = batch.get("note", "–")
        lines.append(f"  batch            {text}")
    return lines


def _ws(ws: dict[str, Any] | None) -> list[str]:
    if ws is None:
        return []
    if not ws.get("checked"):
        return ["", f"  websocket        not checked: {ws.get('reason')}"]
    if not ws.get("connected"):
        return ["", f"  websocket        NOT CONNECTED: {ws.get('error')}"]
    chain = ws.get("chain_id")
    ok = ws.get("chain_id_ok")
    lines = ["", f"  websocket        connected, chain id {chain}" + ("" if ok is None else f" ({'ok' if ok else 'WRONG'})")]
    for kind, entry in ws.get("subscriptions", {}).items():
        status = entry["status"]
        if status == "delivers":
            text = f"delivers (first after {entry['first_ms']:.0f} ms)"
        elif status == "silent":
            text = f"subscribes but silent ({ws['wait_s']:g} s)"
        else:
            text = f"{status}: {entry.get('detail', '')}"
        lines.append(f"    {kind:<24}{text}")
    return lines


def _heads(heads: dict[str, Any] | None) -> list[str]:
    if heads is None:
        return []
    lines = ["", f"  heads vs chain {heads['chain']}: probed head {heads['probed_head']}, best configured "
                 f"{heads['best_configured_head']}"]
    for row in heads["providers"]:
        if row.get("error"):
            lines.append(f"    {row['id']:<24}error: {row['error']}")
        else:
            diff = row.get("probed_minus_it")
            rel = "–" if diff is None else ("same" if diff == 0 else
                                             f"probed is {abs(diff)} {'ahead' if diff > 0 else 'behind'}")
            lines.append(f"    {row['id']:<24}head {row['head']}  {rel}")
    return lines


def render_table(report: dict[str, Any]) -> str:
    calls = report["calls"]
    lines = [*_identity(report), *_latency(report.get("latency") or {})]
    if report.get("latency") is not None:
        lines += _methods(report.get("methods") or {})
    if report.get("archive") is not None or report.get("logs") is not None:
        lines += ["", *_limits(report)]
    lines += [*_ws(report.get("ws")), *_heads(report.get("heads")), ""]
    batch = (f" + {calls['batch_requests']} batch requests ({calls['batch_items']} items)"
             if calls["batch_requests"] else "")
    others = f"; {calls['other_providers']} to configured providers" if calls["other_providers"] else ""
    lines.append(f"  calls            {calls['total']} of a {calls['budget']}-call budget{batch}{others}")
    for problem in report.get("problems", []):
        lines.append(f"  ! {problem}")
    lines.append(f"  verdict          {report['verdict']} (exit {report['exit_code']})")
    return REDACTOR.scrub("\n".join(lines))
