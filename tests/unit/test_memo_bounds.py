"""The per-process memos of the hot path are bounded in count and in bytes: a key made of
client-supplied text (host, path, method) is remembered only while it is short, so a client
sending 16 KiB hosts or 8 KiB paths cannot make a memo hold its strings."""

from __future__ import annotations

from datetime import UTC, datetime

from gateway import routing
from gateway.access import MEMO_ENTRIES, MEMO_KEY_CHARS, AccessControl
from gateway.config import parse_config
from gateway.web import relayed_answer
from tests.unit.conftest import identity, minimal_raw_config

NOW = datetime(2025, 1, 1, tzinfo=UTC)
CONFIG = parse_config(
    minimal_raw_config(
        routes=[
            {
                "name": "site",
                "path": "/",
                "upstream": "http://127.0.0.1:3000",
                "policy": "authenticated",
            }
        ]
    )
)


def long_path(chars: int) -> str:
    return "/" + "a" * (chars - 1)


def test_a_short_path_is_remembered_and_a_long_one_is_not() -> None:
    short, long = long_path(routing.MEMO_PATH_CHARS), long_path(routing.MEMO_PATH_CHARS + 1)
    assert routing.normalize_path(short).forward == short
    assert routing.normalize_path(long).forward == long  # still normalised, every time
    assert short in routing._normal_paths
    assert long not in routing._normal_paths
    assert routing.normalize_path(short) is routing.normalize_path(short)


def test_the_path_memo_is_forgotten_at_its_count() -> None:
    routing._normal_paths.clear()
    for n in range(routing.NORMAL_PATHS + 1):
        routing.normalize_path(f"/p/{n}")
    assert len(routing._normal_paths) == 1


def test_routings_and_decisions_of_long_hosts_are_not_remembered() -> None:
    """The same request is routed and judged the same with a long host, just not kept:
    host and path count for the routing, host, path and method for the decision."""
    access = AccessControl(CONFIG)
    path = routing.normalize_path("/docs/page")
    alice = identity("alice")
    routing_host = "h" * (MEMO_KEY_CHARS - len(path.forward))
    deciding_host = routing_host[: -len("GET")]
    for host in (deciding_host, routing_host, routing_host + "h"):
        routed = access.routed(host, path)
        assert routed is not None and routed.route.name == "site"
        decision = access.decide_for("s:1", routed, "GET", alice, NOW, host).decision
        assert decision.allowed
    assert [key[0] for key in access._routed] == [deciding_host, routing_host]
    assert [key[4] for key in access._memo] == [deciding_host]


def test_a_long_method_is_not_remembered_either() -> None:
    access = AccessControl(CONFIG)
    path = routing.normalize_path("/x")
    routed = access.routed("gw", path)
    assert routed is not None
    method = "M" * MEMO_KEY_CHARS
    assert access.decide_for("", routed, method, None, NOW, "gw").decision.allowed is False
    assert access._memo == {}


def test_the_decision_memo_is_forgotten_at_its_count() -> None:
    access = AccessControl(CONFIG)
    routed = access.routed("gw", routing.normalize_path("/x"))
    assert routed is not None
    alice = identity("alice")
    for n in range(MEMO_ENTRIES + 1):
        access.decide_for(f"s:{n}", routed, "GET", alice, NOW, "gw")
    assert len(access._memo) == 1


def test_an_upstream_reason_is_remembered_only_while_short() -> None:
    relayed_answer._STATUS_LINES.clear()
    short = relayed_answer._status_line((1, 1), 299, b"r" * 64)
    long = relayed_answer._status_line((1, 1), 299, b"r" * 65)
    assert short == b"HTTP/1.1 299 " + b"r" * 64 + b"\r\n"
    assert long == b"HTTP/1.1 299 " + b"r" * 65 + b"\r\n"
    assert [key[3] for key in relayed_answer._STATUS_LINES] == [b"r" * 64]
