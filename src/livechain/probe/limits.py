"""The provider's limits: the widest eth_getLogs block range it accepts, and whether it takes JSON-RPC batches
and how large.

eth_getLogs: one query over a wide range (WIDE_RANGE blocks, or the whole chain when shorter) with a filter
that matches nothing (a topic nobody emits: the answer is empty whatever the range). A refusal is read the
way Livechain reads it while running (`Provider.attempt` → `evm.errors` → `LogsRangeRefused.limit`, the
number the message names: "up to a 1000 block range", "max 2000", "limited to a 10,000 range"); the named
limit is then confirmed with one query of exactly that range. A refusal that names no number ("query
returned more than 10000 results") is narrowed down by trying the common limits below the refused range,
widest first, until one is accepted: the limit is then known to lie between the accepted and the refused one.

Batches: batches of eth_chainId of growing size (1, 10, 100, 1000 — capped by `max_batch`), stopping at the
first that is refused or not fully answered. A refusal that names a number between the largest accepted
size and the refused one gives the limit exactly; otherwise the limit is "between".
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from livechain.errors import LogsRangeRefused, ProviderError
from livechain.probe.client import Answer, ProbeClient

WIDE_RANGE = 100_000
#: block ranges providers commonly limit eth_getLogs to, widest first
COMMON_LIMITS = (50_000, 20_000, 10_000, 5_000, 3_000, 2_000, 1_000, 500, 100, 10)
#: queries the range search may spend at most
LOGS_CALLS = 6
#: a topic nobody emits: any range's answer is empty
NOTHING_TOPIC = "0x" + "fe" * 32
BATCH_SIZES = (1, 10, 100, 1000)
_NUMBER = re.compile(r"\d[\d,]*")


def _query(first: int, last: int) -> list:
    return [{"fromBlock": hex(first), "toBlock": hex(last), "topics": [NOTHING_TOPIC]}]


async def _logs(client: ProbeClient, head: int, span: int) -> Answer:
    return await client.call("eth_getLogs", _query(max(0, head - span + 1), head))


def _timed_out(answer: Answer) -> bool:
    """A range so wide that the provider could not answer in time: the search goes on with narrower ones."""
    return answer.failure is not None and answer.failure.kind in ("timeout", "client_timeout")


def _refusal(answer: Answer) -> LogsRangeRefused | None:
    return answer.failure if isinstance(answer.failure, LogsRangeRefused) else None


async def logs_range(client: ProbeClient, head: int | None) -> dict[str, Any]:
    if head is None:
        return {"limit": None, "found": False, "note": "no head: not checked"}
    wide = min(WIDE_RANGE, head + 1)
    tried: list[dict[str, Any]] = []
    out: dict[str, Any] = {"limit": None, "found": False, "stated": None, "accepted": None, "refused": None,
                           "tried": tried}

    async def attempt(span: int) -> Answer:
        answer = await _logs(client, head, span)
        refusal = _refusal(answer)
        verdict = "accepted" if answer.ok else ("refused" if refusal is not None else answer.status)
        tried.append({"blocks": span, "result": verdict, **({"detail": answer.detail} if not answer.ok else {})})
        if answer.ok:
            out["accepted"] = max(out["accepted"] or 0, span)
        elif refusal is not None:
            out["refused"] = span if out["refused"] is None else min(out["refused"], span)
        return answer

    first = await attempt(wide)
    if first.ok:
        blocks = f"{wide:,} block{'s' if wide > 1 else ''}"
        out["note"] = f"no limit up to {blocks}" + ("" if wide == WIDE_RANGE else " (the whole chain)")
        return out
    refusal = _refusal(first)
    if refusal is None and not _timed_out(first):
        out["note"] = f"the wide query was not answered ({first.status}): limit unknown"
        return out
    candidates: list[int] = [s for s in COMMON_LIMITS if s < wide]
    if refusal is not None and refusal.limit is not None and not refusal.too_many_results and refusal.limit < wide:
        out["stated"] = refusal.limit
        if (await attempt(refusal.limit)).ok:
            out.update(limit=refusal.limit, found=True,
                       note=f"{refusal.limit:,} blocks: named by the refusal, confirmed")
            return out
        candidates = [s for s in candidates if s < refusal.limit]
    for span in candidates[: LOGS_CALLS - len(tried)]:
        answer = await attempt(span)
        if answer.ok:
            break
        if _refusal(answer) is None and not _timed_out(answer):
            out["note"] = f"a query of {span:,} blocks was not answered ({answer.status}): search stopped"
            return out
    accepted, refused = out["accepted"], out["refused"]
    if accepted is None:
        out["note"] = f"no range tried was answered (down to {tried[-1]['blocks']:,} blocks)"
    elif refused is None:  # only timeouts above it: a practical limit, not a refusal
        out["limit"] = accepted
        out["note"] = f"{accepted:,} blocks answered; wider ranges timed out"
    elif refused is not None and refused == accepted + 1:
        out.update(limit=accepted, found=True, note=f"{accepted:,} blocks")
    else:
        out["limit"] = accepted
        out["note"] = f"between {accepted:,} and {refused - 1:,} blocks (the refusal names no number)"
    return out


# ---------------------------------------------------------------------------------------------- batches


def _batch(size: int) -> list[dict]:
    return [{"jsonrpc": "2.0", "id": i + 1, "method": "eth_chainId", "params": []} for i in range(size)]


def _answered(reply: Any, size: int) -> tuple[int, str | None]:
    """(how many items of a batch of `size` got a result, the refusal's message when there was one)."""
    if isinstance(reply, dict):
        error = reply.get("error")
        message = error.get("message") if isinstance(error, dict) else None
        return 0, str(message or "a single reply to a batch")[:160]
    if not isinstance(reply, list):
        return 0, "not a JSON-RPC reply"
    ids = {item.get("id") for item in reply if isinstance(item, dict) and "result" in item}
    ok = len(ids & set(range(1, size + 1)))
    if ok == size:
        return ok, None
    for item in reply:
        if isinstance(item, dict) and isinstance(item.get("error"), dict):
            return ok, str(item["error"].get("message") or "")[:160]
    return ok, f"{size - ok} of {size} items without an answer"


async def batches(client: ProbeClient, max_batch: int) -> dict[str, Any]:
    sizes = [s for s in BATCH_SIZES if s <= max_batch]
    out: dict[str, Any] = {"supported": None, "limit": None, "found": False, "largest_ok": None,
                           "refused_at": None, "tried": []}
    if not sizes:
        out["note"] = "not checked (--max-batch 0)"
        return out
    for size in sizes:
        client.calls.check = "batch"
        try:
            response = await client.post_batch(_batch(size))
        except ProviderError as exc:
            out["tried"].append({"size": size, "result": exc.kind, "detail": exc.message[:160]})
            out["note"] = f"a batch of {size} was not answered ({exc.kind})"
            break
        try:
            reply = orjson.loads(response.body)
        except orjson.JSONDecodeError:
            reply = None
        ok, refusal = _answered(reply, size)
        if refusal is None and response.status < 300:
            out["tried"].append({"size": size, "result": "ok"})
            out.update(supported=True, largest_ok=size)
            continue
        detail = refusal or f"HTTP {response.status}"
        if response.status >= 300:
            detail = f"HTTP {response.status}: {detail}"
        out["tried"].append({"size": size, "result": "refused", "answered": ok, "detail": detail})
        out["refused_at"] = size
        _settle_limit(out, size, ok, refusal or "", detail)
        break
    else:
        out["note"] = f"no limit up to {sizes[-1]:,} (the largest size tried)"
    return out


def _settle_limit(out: dict[str, Any], size: int, ok: int, message: str, detail: str) -> None:
    """Read the limit from a refused batch of `size`: `ok` items answered, `message` the refusal's own words
    (where a number may name the limit), `detail` what the report shows (with the HTTP status)."""
    low = max(out["largest_ok"] or 0, ok)
    if size == 1 and ok == 0:
        out.update(supported=False, note=f"batches refused: {detail}")
        return
    out["supported"] = True
    named = [int(n.replace(",", "")) for n in _NUMBER.findall(message)]
    stated = [n for n in named if low <= n < size]
    if stated:
        out.update(limit=max(stated), found=True, note=f"{max(stated):,} (named by the refusal)")
    elif ok and ok > (out["largest_ok"] or 0):
        out.update(limit=ok, found=True, note=f"{ok:,} (the items answered of a batch of {size:,})")
    else:
        out.update(limit=low, note=f"between {low:,} and {size - 1:,}")
