"""The response cache: a process-wide store bounded by bytes (`store`), and each chain's view of it that knows
which entries are still true — final, on the canonical chain, or of the current head (`chain`). The pipeline's
cache stage (`livechain.pipeline.cache`) reads and fills it."""
