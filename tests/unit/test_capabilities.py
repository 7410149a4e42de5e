"""What a provider can answer: range and result-count refusals recognised in real providers' words, limits
learned from them, state depth, and the age of a state query."""

from __future__ import annotations

import orjson
import pytest

from livechain.config.schema import ProviderConfig
from livechain.errors import LogsRangeRefused, ProviderUnavailable
from livechain.evm.errors import ErrorMeaning, classify, logs_limit, provider_error
from livechain.providers.capabilities import DEFAULT_STATE_DEPTH, Capabilities, state_block


@pytest.mark.parametrize(
    ("code", "message", "meaning", "limit"),
    [
        (-32602, "Log response size exceeded. You can make eth_getLogs requests with up to a 2K block range. "
                 "Based on your parameters, this block range should work: [0x0, 0x7cf]", ErrorMeaning.LOGS_RANGE, 2000),
        (-32000, "block range too large: max 1000", ErrorMeaning.LOGS_RANGE, 1000),
        (-32602, "eth_getLogs is limited to a 1000 range", ErrorMeaning.LOGS_RANGE, 1000),
        (-32000, "exceed maximum block range: 50000", ErrorMeaning.LOGS_RANGE, 50000),
        (-32600, "eth_getLogs and eth_newFilter are limited to a 10,000 blocks range", ErrorMeaning.LOGS_RANGE, 10000),
        (-32005, "query returned more than 10000 results", ErrorMeaning.TOO_MANY_RESULTS, None),
        (-32602, "BlockOutOfRangeError: block height is 11 but requested was 1", ErrorMeaning.UNAVAILABLE, None),
        (-32000, "missing trie node 3f2a (path ) state 0x3f2a is not available", ErrorMeaning.UNAVAILABLE, None),
        (3, "execution reverted", ErrorMeaning.VERBATIM, None),
    ],
)
def test_refusals_are_recognised_in_real_providers_words(code, message, meaning, limit):
    error = {"code": code, "message": message}
    assert classify(error, "eth_getLogs") is meaning
    assert logs_limit(message) == limit
    refused = provider_error(error, "p", method="eth_getLogs")
    if meaning in (ErrorMeaning.LOGS_RANGE, ErrorMeaning.TOO_MANY_RESULTS):
        assert isinstance(refused, LogsRangeRefused) and refused.limit == limit
        assert refused.too_many_results == (meaning is ErrorMeaning.TOO_MANY_RESULTS)
        assert classify(error, "eth_call") is not meaning  # a range refusal means nothing for other methods
    elif meaning is ErrorMeaning.UNAVAILABLE:
        assert isinstance(refused, ProviderUnavailable)


def capabilities(head: int = 1_000, **config: object) -> Capabilities:
    return Capabilities(ProviderConfig(id="p", http_url="http://h/", **config), lambda: head)


def test_a_logs_limit_is_configured_or_learned_from_the_refusal_or_half_the_refused_range():
    configured = capabilities(max_logs_range=500)
    assert configured.logs_limit == 500 and not configured.accepts_logs(501)
    learned = capabilities()
    assert learned.logs_limit is None and learned.accepts_logs(10**6)
    learned.refused_logs_range(2000, b"")
    assert learned.logs_limit == 2000
    halved = capabilities(head=10_000)
    body = orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_getLogs",
                         "params": [{"fromBlock": hex(4_000), "toBlock": "latest"}]})
    halved.refused_logs_range(None, body)
    assert halved.logs_limit == 3_000  # 6,001 blocks refused: half


def test_state_depth_from_config_refusals_and_the_probe():
    assert capabilities(archive=True).serves_state(10**6) and capabilities(archive=True).serves_state(None)
    pruned = capabilities(archive=False)
    assert pruned.serves_state(DEFAULT_STATE_DEPTH) and not pruned.serves_state(DEFAULT_STATE_DEPTH + 1)
    assert not pruned.serves_state(None)  # a block of unknown age: archive providers only
    auto = capabilities()
    assert auto.archive is None and auto.serves_state(10**6)  # optimistic until it refuses
    auto.refused_old_state(50)
    assert auto.archive is False and auto.state_depth == 49 and not auto.serves_state(50)
    auto.refused_old_state(0)  # a block above its own head: lag, not pruning
    assert auto.state_depth == 49
    probed = capabilities()
    probed.probed(4)
    assert probed.archive is False and probed.serves_state(4) and not probed.serves_state(5)
    whole = capabilities()
    whole.probed(None)
    assert whole.archive is True


@pytest.mark.parametrize(
    ("method", "params", "expected"),
    [
        ("eth_getBalance", ["0xa", "0x64"], (True, 900)),
        ("eth_getBalance", ["0xa", "latest"], (True, 0)),
        ("eth_call", [{"to": "0xa"}], (True, 0)),
        ("eth_getStorageAt", ["0xa", "0x0", {"blockNumber": "0x3e0"}], (True, 8)),
        ("eth_getProof", ["0xa", [], {"blockHash": "0x" + "ab" * 32}], (True, None)),
        ("eth_getBalance", ["0xa", "earliest"], (True, 1000)),
        ("eth_getBlockByNumber", ["0x1", False], (False, None)),
    ],
)
def test_the_age_of_a_state_query(method, params, expected):
    assert state_block(method, params, 1_000) == expected
