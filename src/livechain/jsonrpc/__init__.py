"""JSON-RPC 2.0 messages: parse client bodies, build responses. No I/O, no knowledge of chains."""

from livechain.jsonrpc.messages import (
    Invalid,
    Request,
    error_body,
    parse_body,
    parse_message,
    result_response,
)

__all__ = [
    "Invalid",
    "Request",
    "error_body",
    "parse_body",
    "parse_message",
    "result_response",
]
