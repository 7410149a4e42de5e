"""`livechain probe`: a conformance and capability report for one provider, before it goes into a config.

    client.py   the provider as Livechain sees it (a real `Provider`), every call counted, the budget enforced
    checks.py   identity, latency of the core methods, the standard methods, archive depth
    limits.py   the eth_getLogs range limit, batch support and limit
    ws.py       WebSocket: chain id, subscriptions that deliver
    heads.py    its head beside a configured chain's providers' heads
    run.py      the checks in order → the report and its exit code
    report.py   exit codes, the URL as shown, table and JSON renderings (through the log redactor)
    command.py  the `livechain probe` subcommand (its parser is built without importing the checks)

In a program: `await livechain.probe.run.probe(ProbeOptions(url=...))` → the report (a dict).
"""
