"""Local EVM nodes for the demo and the tests: anvil processes on ephemeral ports."""

from livechain.devnet.anvil import Anvil, find_anvil

__all__ = ["Anvil", "find_anvil"]
