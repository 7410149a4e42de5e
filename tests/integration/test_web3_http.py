"""web3.py's HTTPProvider works through Livechain unchanged (sync provider, in a worker thread)."""

from __future__ import annotations

import asyncio

from web3 import Web3

from tests.conftest import config_text, dev_chain
from tests.evm_helpers import DEV_KEY, TOPIC, contract_init_code


def scenario(url: str) -> dict:
    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 20}))
    account = w3.eth.account.from_key(DEV_KEY)
    out = {"chain_id": w3.eth.chain_id, "balance": w3.eth.get_balance(account.address)}

    def send(tx: dict) -> dict:
        tx = {"from": account.address, "nonce": w3.eth.get_transaction_count(account.address),
              "gas": 200_000, "gasPrice": w3.eth.gas_price, "chainId": 31337, **tx}
        signed = account.sign_transaction(tx)
        tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
        return w3.eth.wait_for_transaction_receipt(tx_hash, timeout=20, poll_latency=0.05)

    deployed = send({"data": contract_init_code()})
    address = deployed["contractAddress"]
    out["call"] = int.from_bytes(w3.eth.call({"to": address}), "big")
    emitted = send({"to": address, "data": "0x"})
    out["block_number"] = w3.eth.block_number
    out["block"] = w3.eth.get_block(emitted["blockNumber"])
    out["logs"] = w3.eth.get_logs({"address": address, "fromBlock": 0, "toBlock": "latest"})
    with w3.batch_requests() as batch:
        batch.add(w3.eth.get_block(0))
        batch.add(w3.eth.get_balance(account.address))
        batch.add(w3.eth.get_transaction_count(account.address))
        out["batch"] = batch.execute()
    out["emitted_block"] = emitted["blockNumber"]
    return out


async def test_web3_http_provider_works_unchanged_through_livechain(start_livechain, proxies):
    lc = await start_livechain(config_text(dev_chain(proxies, "round_robin")))
    out = await asyncio.to_thread(scenario, f"{lc.base}/rpc/dev")
    assert out["chain_id"] == 31337
    assert out["balance"] > 10**21
    assert out["call"] == 42
    assert out["block_number"] >= 2
    assert out["block"]["number"] == out["emitted_block"] and len(out["block"]["transactions"]) == 1
    assert len(out["logs"]) == 1 and "0x" + out["logs"][0]["topics"][0].hex().removeprefix("0x") == TOPIC
    assert int.from_bytes(out["logs"][0]["data"], "big") == 42
    genesis, balance, nonce = out["batch"]
    assert genesis["number"] == 0 and balance > 0 and nonce == 2
