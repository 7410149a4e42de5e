"""JSON-RPC 2.0 parsing: the spec's edge cases, ids preserved exactly."""

import orjson
import pytest

from livechain.errors import InvalidRequest, ParseError
from livechain.jsonrpc.messages import Invalid, Request, parse_body
from livechain.jsonrpc.replies import parse_reply


def test_single_request_keeps_the_clients_bytes_for_forwarding():
    """A single request with an ordinary id is forwarded as the client's own bytes."""
    body = b'{"jsonrpc":"2.0","id":7,"method":"eth_chainId","params":[]}'
    req = parse_body(body)
    assert isinstance(req, Request)
    assert req.upstream_body() is body
    assert not req.notification


@pytest.mark.parametrize("rid", [0, -1, 2**63 - 1, "abc", "", "0x1"])
def test_ordinary_ids_round_trip_through_the_providers_echo(rid):
    """The provider's reply with the same id is passed through unchanged."""
    req = parse_body(orjson.dumps({"jsonrpc": "2.0", "id": rid, "method": "m"}))
    reply = parse_reply(orjson.dumps({"jsonrpc": "2.0", "id": rid, "result": "0x1"}))
    out = orjson.loads(reply.for_client(req.reply_id))
    assert out["id"] == rid and type(out["id"]) is type(rid)


def test_huge_integer_id_is_preserved_exactly():
    """orjson reads >64-bit ints as floats; the stdlib re-read keeps the exact integer."""
    body = b'{"jsonrpc":"2.0","id":123456789012345678901234567890,"method":"m"}'
    req = parse_body(body)
    assert req.id == 123456789012345678901234567890 and req.needs_wire_id
    sent = orjson.loads(req.upstream_body(1))
    assert sent["id"] == 1
    reply = parse_reply(b'{"jsonrpc":"2.0","id":1,"result":"0x1"}')
    assert b'"id":123456789012345678901234567890' in reply.for_client(req.reply_id)


def test_null_id_gets_a_wire_id_upstream_and_null_back():
    """id null is a request (not a notification); the reply carries null."""
    req = parse_body(b'{"jsonrpc":"2.0","id":null,"method":"m"}')
    assert not req.notification and req.needs_wire_id
    reply = parse_reply(b'{"jsonrpc":"2.0","id":1,"result":true}')
    assert orjson.loads(reply.for_client(req.reply_id))["id"] is None


def test_notification_has_no_id():
    req = parse_body(b'{"jsonrpc":"2.0","method":"eth_chainId"}')
    assert req.notification


@pytest.mark.parametrize(
    "body, error",
    [
        (b"{", ParseError),
        (b"\xff\xfe", ParseError),
        (b'{"a":NaN}', ParseError),
        (b"[]", InvalidRequest),
        (b"1", InvalidRequest),
        (b'"x"', InvalidRequest),
    ],
)
def test_whole_body_errors(body, error):
    """Bad JSON → -32700; valid JSON that is no request or batch, or an empty batch → -32600."""
    with pytest.raises(error):
        parse_body(body)


@pytest.mark.parametrize(
    "item",
    [
        1,
        {"jsonrpc": "1.0", "id": 1, "method": "m"},
        {"id": 1, "method": "m"},
        {"jsonrpc": "2.0", "id": 1, "method": 5},
        {"jsonrpc": "2.0", "id": 1, "method": ""},
        {"jsonrpc": "2.0", "id": 1, "method": "m", "params": 3},
        {"jsonrpc": "2.0", "id": 1, "method": "m", "params": None},
        {"jsonrpc": "2.0", "id": [1], "method": "m"},
        {"jsonrpc": "2.0", "id": {"a": 1}, "method": "m"},
    ],
)
def test_invalid_batch_items_are_answered_individually(item):
    """Each invalid item becomes an Invalid with -32600; valid neighbours still parse."""
    out = parse_body(orjson.dumps([item, {"jsonrpc": "2.0", "id": 2, "method": "ok"}]))
    assert isinstance(out[0], Invalid) and out[0].error.code == -32600
    assert isinstance(out[1], Request) and out[1].id == 2
    if isinstance(item, dict) and type(item.get("id")) is int:
        assert out[0].id == item["id"]
