"""web3.py on an in-process Livechain (`livechain.web3`) against anvil, with one of three providers faulted:
the everyday calls, a batch, a signed transaction and its receipt; and subscriptions through web3.py's
persistent-provider interface."""

from __future__ import annotations

import asyncio

import pytest
from web3 import AsyncWeb3

from livechain import Livechain
from livechain.faults import Fault
from livechain.web3 import LivechainProvider, LivechainSocketProvider
from tests.conftest import wait_for
from tests.evm_helpers import DEV_KEY, TOPIC, contract_init_code, deploy_emitter, emit
from tests.integration.test_library import config


@pytest.mark.parametrize("fault", [Fault(mode="refuse"), Fault(mode="http_status", status=502)], ids=["refuse", "http_502"])
async def test_web3_through_the_in_process_provider_with_one_provider_faulted(anvil, proxies, fault):
    """Round robin over three providers, p1 faulted: every call succeeds (failover in-process), and the
    answers are anvil's."""
    proxies[1].set(fault)
    async with Livechain.from_config(config(proxies, strategy="round_robin")) as lc:
        w3 = AsyncWeb3(LivechainProvider(lc, "dev"))
        assert await w3.is_connected()
        account = w3.eth.account.from_key(DEV_KEY)
        assert await w3.eth.chain_id == 31337
        balance = await w3.eth.get_balance(account.address)
        assert balance > 10**21

        async def send(tx: dict) -> dict:
            tx = {"from": account.address, "nonce": await w3.eth.get_transaction_count(account.address),
                  "gas": 200_000, "gasPrice": await w3.eth.gas_price, "chainId": 31337, **tx}
            signed = account.sign_transaction(tx)
            tx_hash = await w3.eth.send_raw_transaction(signed.raw_transaction)
            return await w3.eth.wait_for_transaction_receipt(tx_hash, timeout=20, poll_latency=0.05)

        deployed = await send({"data": contract_init_code()})
        address = deployed["contractAddress"]
        assert deployed["status"] == 1
        assert int.from_bytes(await w3.eth.call({"to": address}), "big") == 42
        emitted = await send({"to": address, "data": "0x"})
        assert await w3.eth.block_number >= emitted["blockNumber"]
        block = await w3.eth.get_block(emitted["blockNumber"])
        assert block["number"] == emitted["blockNumber"] and len(block["transactions"]) == 1
        logs = await w3.eth.get_logs({"address": address, "fromBlock": 0, "toBlock": "latest"})
        assert len(logs) == 1 and logs[0]["topics"][0].to_0x_hex() == TOPIC
        async with w3.batch_requests() as batch:
            batch.add(w3.eth.get_block(0))
            batch.add(w3.eth.get_balance(account.address))
            batch.add(w3.eth.get_transaction_count(account.address))
            genesis, after, nonce = await batch.async_execute()
        assert genesis["number"] == 0 and after < balance and nonce == 2
        served = {pid for pid, per in lc.chain("dev").store.rpc().items() if sum(m["successes"] for m in per.values())}
        assert "p1" not in served and {"p0", "p2"} <= served


async def test_web3_subscriptions_through_the_in_process_socket_provider(anvil, proxies):
    """`w3.eth.subscribe` on LivechainSocketProvider: raced newHeads, every block once and in order, and the
    logs of a filter; unsubscribing leaves no client subscription behind."""
    address = await deploy_emitter(anvil)
    async with Livechain.from_config(config(proxies)) as lc:
        chain = lc.chain("dev")
        assert await wait_for(lambda: len(chain.subscriptions.heads.live) == 3)
        heads: list[int] = []
        logs: list[str] = []
        async with AsyncWeb3(LivechainSocketProvider(lc, "dev")) as w3:
            assert await w3.eth.chain_id == 31337
            heads_id = await w3.eth.subscribe("newHeads")
            logs_id = await w3.eth.subscribe("logs", {"address": address})
            assert chain.subscriptions.clients_by_kind() == {"newHeads": 1, "logs": 1}
            await emit(anvil, address)
            for _ in range(3):
                await anvil.rpc("evm_mine", [])
            async with asyncio.timeout(20):
                async for message in w3.socket.process_subscriptions():
                    if message["subscription"] == heads_id:
                        heads.append(message["result"]["number"])
                    elif message["subscription"] == logs_id:
                        logs.append(message["result"]["transactionHash"].to_0x_hex())
                    if len(heads) >= 3 and logs:
                        break
            assert await w3.eth.unsubscribe(heads_id) is True
            assert await w3.eth.unsubscribe(logs_id) is True
            assert chain.subscriptions.clients_by_kind() == {"newHeads": 0}
        assert heads == list(range(heads[0], heads[0] + len(heads)))
        assert len(logs) == 1
