"""Command line: argv → config → app.

    livechain serve --config FILE [--host H] [--port N]
    livechain config check FILE
    livechain stats --config FILE [--region R] [--chain C]
    livechain demo [--port N]
    livechain probe URL [--ws URL] [--chain-id N] [--json] [--config FILE --chain NAME]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from livechain import log as logsetup
from livechain.config import ConfigError, ConfigStore, load_config


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="livechain", description="RPC-provider orchestration proxy for EVM chains")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the proxy")
    serve.add_argument("--config", "-c", required=True, help="YAML config file")
    serve.add_argument("--host", help="listen address (overrides server.host)")
    serve.add_argument("--port", type=int, help="listen port (overrides server.port; 0 = ephemeral)")

    config = sub.add_parser("config", help="config tools")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    check = config_sub.add_parser("check", help="validate a config file")
    check.add_argument("file")

    stats = sub.add_parser("stats", help="print the leaderboard from the database")
    stats.add_argument("--config", "-c", required=True, help="YAML config file (for the database path and region)")
    stats.add_argument("--region", help="read another region's snapshot from the database")
    stats.add_argument("--chain", help="only this chain")
    stats.add_argument("--event", default="newHeads", help="race event type (default newHeads)")

    demo = sub.add_parser("demo", help="local anvil chains behind simulated providers, proxy and dashboard")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=4000, help="proxy port (0 = ephemeral)")

    from livechain.probe.command import add_parser as add_probe

    add_probe(sub)
    return parser


def _load(path: str):
    try:
        return load_config(path)
    except ConfigError as exc:
        print(f"config {path} is invalid:", file=sys.stderr)
        for where, message in exc.problems:
            print(f"  {where}: {message}", file=sys.stderr)
        return None


def cmd_serve(args: argparse.Namespace) -> int:
    from livechain.app import App, run, serve
    from livechain.demo.controls import Controls

    config = _load(args.config)
    if config is None:
        return 2
    logsetup.setup(config.logging.level, config.logging.format)
    store = ConfigStore(args.config, config)
    # the dashboard's load simulator, behind the admin token (no fault proxies outside the demo)
    run(serve(App(store, plugins=[Controls.factory()]), args.host, args.port))
    return 0


def cmd_config_check(args: argparse.Namespace) -> int:
    config = _load(args.file)
    if config is None:
        return 2
    providers = sum(len(c.providers) for c in config.chains.values())
    print(f"{args.file}: OK — {len(config.chains)} chain(s), {providers} provider(s)")
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    from livechain.stats import print_stats

    config = _load(args.config)
    if config is None:
        return 2
    return print_stats(config, region=args.region, chain=args.chain, event=args.event)


def cmd_demo(args: argparse.Namespace) -> int:
    from livechain.demo.run import main as demo_main

    return demo_main(args.host, args.port)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return cmd_serve(args)
    if args.command == "config":
        return cmd_config_check(args)
    if args.command == "stats":
        return cmd_stats(args)
    if args.command == "demo":
        return cmd_demo(args)
    if args.command == "probe":
        from livechain.probe.command import cmd_probe

        return cmd_probe(args)
    return 2
