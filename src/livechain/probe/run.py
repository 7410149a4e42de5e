"""`probe()`: every check of one provider, in order, within the call budget; the report and its exit code.

Order: identity (eth_chainId, web3_clientVersion — an unreachable provider or a wrong chain id ends the probe
here), then, while the WebSocket check runs beside them (its wait overlaps the HTTP checks), latency of the
core methods, the standard methods, archive depth, the eth_getLogs range limit, batches, and the heads of a
configured chain's providers. The HTTP checks run one after another, so latencies are not measured under
the probe's own load.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from livechain.config.schema import ChainConfig
from livechain.evm.events import hex_number
from livechain.probe import checks, limits
from livechain.probe.client import Calls, ProbeClient
from livechain.probe.heads import compare_heads
from livechain.probe.report import EXIT_OK, EXIT_UNREACHABLE, EXIT_WRONG_CHAIN, shown_url
from livechain.probe.ws import WS_CALLS, check_ws


@dataclass(frozen=True)
class ProbeOptions:
    url: str
    ws_url: str | None = None
    #: the chain id the provider must serve (--chain-id, else the config chain's)
    chain_id: int | None = None
    #: the configured chain whose providers' heads the probed one is compared with (--config, --chain)
    chain: ChainConfig | None = None
    samples: int = 3
    ws_wait: float = 13.0
    timeout: float = 10.0
    max_batch: int = 1000


def budget(samples: int) -> int:
    """The most calls a probe sends to the provider (the batch probe's batches apart): identity 2, latency
    5 × samples, the standard methods, the archive search, the eth_getLogs range search, the WebSocket's
    eth_chainId and subscriptions, one eth_blockNumber beside the configured heads."""
    return (2 + len(checks.CORE_METHODS) * samples + len(checks.STANDARD_METHODS) + checks.ARCHIVE_CALLS
            + limits.LOGS_CALLS + WS_CALLS + 1)


async def probe(options: ProbeOptions) -> dict[str, Any]:
    started = time.monotonic()
    calls = Calls(budget(options.samples))
    client = ProbeClient(options.url, calls, timeout=options.timeout)
    report: dict[str, Any] = {
        "url": shown_url(options.url), "ws_url": shown_url(options.ws_url),
        "expected_chain_id": options.chain_id, "chain_id": None, "chain_id_ok": None, "client_version": None,
        "head": None, "problems": [],
    }
    ws_task: asyncio.Task | None = None
    try:
        if not await _identity(client, options, report):
            return _finish(report, calls, started)
        if options.ws_url is not None:
            ws_task = asyncio.get_running_loop().create_task(
                # without an expected chain id, the WebSocket must serve the chain the HTTP URL serves
                check_ws(options.ws_url, calls, wait=options.ws_wait,
                         expected_chain_id=report["chain_id"] if options.chain_id is None else options.chain_id,
                         timeout=options.timeout), name="probe/ws")
        else:
            report["ws"] = {"checked": False, "reason": "no --ws URL given"}
        await _http_checks(client, options, report)
        if ws_task is not None:
            report["ws"] = await ws_task
        return _finish(report, calls, started)
    finally:
        if ws_task is not None and not ws_task.done():
            ws_task.cancel()
            await asyncio.gather(ws_task, return_exceptions=True)
        await client.close()


async def _identity(client: ProbeClient, options: ProbeOptions, report: dict[str, Any]) -> bool:
    """False when the probe ends here (unreachable, wrong chain id)."""
    chain_id, version = await checks.identity(client)
    report["methods"] = {"eth_chainId": checks.method_entry(chain_id)}
    if version is None:
        report.update(verdict="unreachable", exit_code=EXIT_UNREACHABLE, error=chain_id.detail)
        report["problems"].append(f"no JSON-RPC answer to eth_chainId ({chain_id.status})")
        return False
    report["methods"]["web3_clientVersion"] = checks.method_entry(version)
    report["chain_id"] = hex_number(chain_id.result) if chain_id.ok else None
    report["client_version"] = version.result if version.ok and isinstance(version.result, str) else None
    if options.chain_id is not None:
        report["chain_id_ok"] = report["chain_id"] == options.chain_id
        if not report["chain_id_ok"]:
            report.update(verdict="wrong_chain_id", exit_code=EXIT_WRONG_CHAIN)
            serves = ("does not tell its chain id" if report["chain_id"] is None
                      else f"serves chain {report['chain_id']}")
            report["problems"].append(f"{serves}, not {options.chain_id}: the other checks were skipped")
            return False
    return True


async def _http_checks(client: ProbeClient, options: ProbeOptions, report: dict[str, Any]) -> None:
    calls = client.calls
    calls.check = "latency"
    report["latency"], core, head, block = await checks.latency(client, options.samples)
    report["head"] = head
    calls.check = "methods"
    report["methods"].update(await checks.methods(client, core, block))
    calls.check = "archive"
    report["archive"] = await checks.archive(client, head)
    calls.check = "logs"
    report["logs"] = await limits.logs_range(client, head)
    report["batch"] = await limits.batches(client, options.max_batch)
    if options.chain is not None:
        calls.check = "heads"
        report["heads"] = await compare_heads(client, options.chain, calls)


def _finish(report: dict[str, Any], calls: Calls, started: float) -> dict[str, Any]:
    report.setdefault("verdict", "ok")
    report.setdefault("exit_code", EXIT_OK)
    ws = report.get("ws")
    if ws and ws.get("checked") and report["exit_code"] == EXIT_OK:
        if not ws.get("connected"):
            report.update(verdict="unreachable", exit_code=EXIT_UNREACHABLE)
            report["problems"].append("the WebSocket URL does not connect")
        elif ws.get("chain_id_ok") is False:
            report.update(verdict="wrong_chain_id", exit_code=EXIT_WRONG_CHAIN)
            report["problems"].append(f"the WebSocket serves chain {ws.get('chain_id')}, not "
                                      f"{ws.get('expected_chain_id')}")
    report["problems"] += _notes(report)
    report["calls"] = calls.snapshot()
    report["elapsed_s"] = round(time.monotonic() - started, 2)
    return report


def _notes(report: dict[str, Any]) -> list[str]:
    """What someone putting the provider in a config should know, beyond the numbers."""
    notes = []
    failed = [m for m, e in (report.get("methods") or {}).items()
              if e["status"] not in ("supported", "unsupported")]
    if failed and report.get("latency") is not None:
        notes.append(f"no answer for: {', '.join(failed)}")
    ws = report.get("ws") or {}
    for kind, entry in (ws.get("subscriptions") or {}).items():
        if entry["status"] == "silent":
            notes.append(f"WebSocket {kind}: subscribes but silent within {ws['wait_s']:g} s")
    heads = report.get("heads")
    if heads and heads.get("behind_best"):
        notes.append(f"its head is {heads['behind_best']} blocks behind the best configured provider's")
    return notes
