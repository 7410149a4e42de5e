"""A hand-assembled log-emitting contract and anvil's well-known dev account, for tests."""

from __future__ import annotations

import asyncio

DEV_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
DEV_ADDRESS = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"
TOPIC = "0x" + "11" * 32


def contract_init_code() -> str:
    """Every call stores 42 in memory, emits LOG1(TOPIC) with it as data, and returns it."""
    runtime = "602a600052" + "7f" + TOPIC[2:] + "60206000a1" + "60206000f3"
    size = len(runtime) // 2
    return "0x" + f"60{size:02x}600c60003960{size:02x}6000f3" + runtime


async def deploy_emitter(node) -> str:
    """Deploy the contract on an anvil node (unlocked dev account); returns its address."""
    tx_hash = await node.rpc("eth_sendTransaction", [{"from": DEV_ADDRESS, "data": contract_init_code(), "gas": "0x30000"}])
    return (await receipt(node, tx_hash))["contractAddress"]


async def receipt(node, tx_hash: str, timeout: float = 10.0) -> dict:
    """Wait for a transaction's receipt on an anvil node."""
    for _ in range(int(timeout / 0.05)):
        found = await node.rpc("eth_getTransactionReceipt", [tx_hash])
        if found:
            return found
        await asyncio.sleep(0.05)
    raise TimeoutError(f"no receipt for {tx_hash}")


async def emit(node, address: str) -> str:
    return await node.rpc("eth_sendTransaction", [{"from": DEV_ADDRESS, "to": address, "data": "0x", "gas": "0x30000"}])
