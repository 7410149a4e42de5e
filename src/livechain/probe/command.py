"""`livechain probe URL [--ws URL] [--chain-id N] [--json] [--config FILE --chain NAME]`: arguments → options →
report on stdout → exit code. Usage problems go to stderr with exit 2 and never echo a URL."""

from __future__ import annotations

import argparse
import asyncio
import sys
from urllib.parse import urlsplit

from livechain import log as logsetup
from livechain.config import ConfigError, load_config
from livechain.config.schema import ChainConfig
from livechain.probe.report import EXIT_USAGE, register_secrets, render_table, to_json


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "probe", help="conformance and capability report for one provider",
        description="Check one provider before it goes into a config: chain id, client version, latency, "
                    "supported methods, archive depth, eth_getLogs range limit, batches, WebSocket "
                    "subscriptions. Exit 0 ok, 2 usage, 3 unreachable, 4 wrong chain id.")
    parser.add_argument("url", help="the provider's HTTP(S) JSON-RPC URL")
    parser.add_argument("--ws", dest="ws_url", help="its WebSocket URL (ws:// or wss://); without it, no WebSocket check")
    parser.add_argument("--chain-id", type=int, help="the chain id it must serve (exit 4 otherwise)")
    parser.add_argument("--json", action="store_true", help="machine-readable report")
    parser.add_argument("--config", "-c", help="a Livechain config: compare the provider's head with its chain's")
    parser.add_argument("--chain", help="the config's chain (name or chain id) to compare with")
    parser.add_argument("--samples", type=int, default=3, help="latency calls per core method (1-10, default 3)")
    parser.add_argument("--ws-wait", type=float, default=13.0,
                        help="seconds to wait for each subscription's first notification (default 13)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per call (default 10)")
    parser.add_argument("--max-batch", type=int, default=1000,
                        help="largest batch tried: 1, 10, 100, 1000 up to this (0: no batch check)")


def _url_ok(url: str, schemes: tuple[str, ...]) -> bool:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 — raises ValueError on a bad port
    except ValueError:
        return False
    return parts.scheme in schemes and bool(parts.hostname)


def _usage(message: str) -> int:
    print(f"livechain probe: {message}", file=sys.stderr)
    return EXIT_USAGE


def _chain(path: str, name: str) -> ChainConfig | str:
    """The config's chain, or what is wrong (never a value from the file)."""
    try:
        config = load_config(path)
    except ConfigError as exc:
        return f"config {path} is invalid: " + "; ".join(f"{where}: {message}" for where, message in exc.problems)
    for chain in config.chains.values():
        for provider in chain.providers:
            register_secrets(provider.http_url, provider.ws_url)
            for value in provider.headers.values():
                logsetup.REDACTOR.register(value, "<secret>")
    found = config.chains.get(name) or next((c for c in config.chains.values() if str(c.chain_id) == name), None)
    if found is None:
        return f"no chain {name!r} in {path} (chains: {', '.join(config.chains)})"
    return found


def cmd_probe(args: argparse.Namespace) -> int:
    register_secrets(args.url, args.ws_url)
    logsetup.setup("error", "text")  # the report is the output; library log lines only when something breaks
    if not _url_ok(args.url, ("http", "https")):
        return _usage("URL must be an http:// or https:// URL with a host")
    if args.ws_url is not None and not _url_ok(args.ws_url, ("ws", "wss")):
        return _usage("--ws must be a ws:// or wss:// URL with a host")
    if (args.config is None) != (args.chain is None):
        return _usage("--config and --chain go together")
    if not 1 <= args.samples <= 10 or args.timeout <= 0 or args.ws_wait <= 0 or args.max_batch < 0:
        return _usage("--samples is 1-10; --timeout and --ws-wait are positive; --max-batch is 0 or more")
    chain = None
    expected = args.chain_id
    if args.config is not None:
        found = _chain(args.config, args.chain)
        if isinstance(found, str):
            return _usage(found)
        chain = found
        if expected is not None and expected != chain.chain_id:
            return _usage(f"--chain-id {expected} disagrees with chain {chain.name}'s chain_id {chain.chain_id}")
        expected = chain.chain_id
    from livechain.probe.run import ProbeOptions, probe

    options = ProbeOptions(url=args.url, ws_url=args.ws_url, chain_id=expected, chain=chain, samples=args.samples,
                           ws_wait=args.ws_wait, timeout=args.timeout, max_batch=args.max_batch)
    try:
        report = asyncio.run(probe(options))
    except KeyboardInterrupt:
        return 130
    print(to_json(report) if args.json else render_table(report))
    return int(report["exit_code"])
