"""EVM protocol facts: which methods are which, event identities, block tags, provider error meanings."""
