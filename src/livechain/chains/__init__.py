"""Chains: the per-chain facade (providers, routing, benchmarks, health) and the registry that reconciles
them with the current config."""
