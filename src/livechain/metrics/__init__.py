"""What Livechain remembers about providers: latency and outcome per method, race results, scores."""
