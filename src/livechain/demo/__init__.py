"""Demo tooling, beside `faults/` and `devnet/` — not part of the web edge:

    run.py         `livechain demo`: local anvil chains behind fault proxies with distinct latency profiles
    simulator.py   the dashboard's load simulator: bounded synthetic load sent through Livechain's own edge
    controls.py    the simulator and fault controls as a plugin of the web edge (`/api/simulator`,
                   `/api/faults`), plugged in by `livechain demo` (simulator + faults, demo mode) and by
                   `livechain serve` (the simulator, behind the admin token)
"""
