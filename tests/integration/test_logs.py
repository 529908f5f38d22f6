"""Logs of a real ``hf-gateway run`` (docs/logs.md): JSON lines, one access line per
request with who made it, one audit line per decision, the request id everywhere (answers,
upstream, every line), escaping of hostile values, repeated faults counted."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.devtools.fake_hf import FakeHF
from tests.support.gateway_process import GatewayProcess
from tests.support.harness import API, BROWSER
from tests.support.raw_http import raw_request
from tests.support.redis_server import RedisServer

ALICE_SUB = "3f501019b1460301dacf1e59"
DAVE_SUB = "db660f57c52eb4aca76ed133"
OUR_ID = re.compile(r"[0-9a-f]{20}")


def lines_of(process: GatewayProcess) -> list[dict[str, Any]]:
    """Every line the process wrote, each parsed as JSON (a line that is not fails)."""
    parsed = []
    for line in process.output().splitlines():
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            raise AssertionError(f"not a JSON line: {line!r}") from None
    return parsed


def access_lines(process: GatewayProcess) -> list[dict[str, Any]]:
    return [line for line in lines_of(process) if line["logger"] == "gateway.access"]


def audit_lines(process: GatewayProcess) -> list[dict[str, Any]]:
    return [line for line in lines_of(process) if line["logger"] == "gateway.audit"]


def one(lines: list[dict[str, Any]], request_id: str) -> dict[str, Any]:
    found = [line for line in lines if line.get("request_id") == request_id]
    assert len(found) == 1, (request_id, found)
    return found[0]


async def settled(process: GatewayProcess, request_id: str) -> None:
    """The access line is written once the answer is out: wait until it is there."""
    for _ in range(100):
        if any(
            request_id in line and "gateway.access" in line
            for line in process.output().splitlines()
        ):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"no line with {request_id}")


def upstream_saw(echoed: dict[str, Any], name: str) -> list[str]:
    """The values of header ``name`` the echo upstream received."""
    return [v for k, v in echoed["headers"] if k.lower() == name.lower()]


def configured(process: GatewayProcess, **changes: Any) -> GatewayProcess:
    config = process.read_config()
    for key, value in changes.items():
        section, _, name = key.partition("__")
        config.setdefault(section, {})[name] = value
    process.write_config(config)
    return process


@pytest.fixture
def stopped() -> Iterator[list[GatewayProcess]]:
    processes: list[GatewayProcess] = []
    yield processes
    for process in processes:
        process.stop()


@pytest.fixture
async def gateway_run(
    fake_hf: FakeHF,
    upstream: str,
    redis_server: RedisServer,
    tmp_path: Path,
    stopped: list[GatewayProcess],
) -> GatewayProcess:
    process = GatewayProcess(
        tmp_path, issuer=fake_hf.issuer, upstream=upstream, redis_url=redis_server.url
    )
    stopped.append(process)
    await process.start()
    return process


@pytest.fixture
async def trusting_run(
    fake_hf: FakeHF,
    upstream: str,
    redis_server: RedisServer,
    tmp_path: Path,
    stopped: list[GatewayProcess],
) -> GatewayProcess:
    """A gateway behind a trusted proxy at 127.0.0.1 (the test client)."""
    process = GatewayProcess(
        tmp_path,
        issuer=fake_hf.issuer,
        upstream=upstream,
        redis_url=redis_server.url,
        server={"trusted_proxies": ["127.0.0.1/32"]},
    )
    stopped.append(process)
    await process.start()
    return process


@pytest.fixture
async def signed_in_as(
    gateway_run: GatewayProcess, fake_hf: FakeHF
) -> AsyncIterator[dict[str, aiohttp.ClientSession]]:
    sessions: dict[str, aiohttp.ClientSession] = {}
    for name in ("alice", "dave"):
        http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        await gateway_run.sign_in(http, fake_hf, name)
        sessions[name] = http
    yield sessions
    for http in sessions.values():
        await http.close()


# ---------------------------------------------------------------------- access lines


async def test_every_line_is_json_and_an_allowed_request_names_who_made_it(
    gateway_run: GatewayProcess, signed_in_as: dict[str, aiohttp.ClientSession]
) -> None:
    async with signed_in_as["alice"].get(
        f"{gateway_run.url}/api/echo?q=1", headers={**API, "User-Agent": "tests/1"}
    ) as response:
        assert response.status == 200
        rid = response.headers["X-Request-Id"]
        body = await response.read()
    await settled(gateway_run, rid)
    line = one(access_lines(gateway_run), rid)
    assert line["level"] == "INFO"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["ts"])
    assert line["route"] == "tool"
    assert (line["method"], line["target"], line["status"]) == ("GET", "/api/echo?q=1", 200)
    assert (line["user"], line["sub"]) == ("alice", ALICE_SUB)
    assert line["bytes"] >= len(body) > 0
    assert line["duration_ms"] >= line["upstream_ms"] > 0
    assert (line["remote"], line["user_agent"]) == ("127.0.0.1", "tests/1")
    allowed = one(audit_lines(gateway_run), rid)
    assert allowed["decision"] == "allow"
    assert (allowed["user"], allowed["sub"], allowed["route"]) == ("alice", ALICE_SUB, "tool")
    assert (allowed["policy"], allowed["rule"], allowed["reasons"]) == (
        "authenticated",
        "allow[0]",
        ["allowed"],
    )


async def test_an_anonymous_request_logs_no_user_and_its_unauthenticated_decision(
    gateway_run: GatewayProcess,
) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{gateway_run.url}/api/echo", headers=API) as response,
    ):
        assert response.status == 401
        rid = response.headers["X-Request-Id"]
    await settled(gateway_run, rid)
    line = one(access_lines(gateway_run), rid)
    assert (line["user"], line["sub"], line["upstream_ms"]) == ("", "", None)
    decided = one(audit_lines(gateway_run), rid)
    assert (decided["decision"], decided["reasons"], decided["rule"]) == (
        "unauthenticated",
        ["unauthenticated"],
        "unauthenticated",
    )


async def test_a_denied_request_is_audited_with_its_reason_codes_and_rule(
    gateway_run: GatewayProcess, signed_in_as: dict[str, aiohttp.ClientSession]
) -> None:
    """dave is refused on /writers (no allow rule matched); alice, the twin, is let in by
    the policy's first allow rule."""
    async with signed_in_as["dave"].get(f"{gateway_run.url}/writers/x", headers=API) as response:
        assert response.status == 403
        refused = await response.json()
        rid = response.headers["X-Request-Id"]
    assert refused["request_id"] == rid  # the id the client sees is the one in the log
    async with signed_in_as["alice"].get(f"{gateway_run.url}/writers/x", headers=API) as response:
        assert response.status == 200
        allowed_id = response.headers["X-Request-Id"]
    await settled(gateway_run, allowed_id)
    denied = one(audit_lines(gateway_run), rid)
    assert (denied["user"], denied["sub"], denied["route"]) == ("dave", DAVE_SUB, "writers")
    assert (denied["decision"], denied["policy"], denied["rule"]) == ("deny", "writers", "no_allow")
    assert denied["reasons"][:2] == ["no_matching_allow", "rule_failed"]
    assert one(access_lines(gateway_run), rid)["status"] == 403
    allowed = one(audit_lines(gateway_run), allowed_id)
    assert (allowed["decision"], allowed["rule"], allowed["user"]) == ("allow", "allow[0]", "alice")


async def test_the_request_id_on_an_error_page_is_in_its_log_lines(
    gateway_run: GatewayProcess, signed_in_as: dict[str, aiohttp.ClientSession]
) -> None:
    async with signed_in_as["dave"].get(
        f"{gateway_run.url}/writers/x", headers=BROWSER
    ) as response:
        assert response.status == 403
        page = await response.text()
    shown = re.search(r"Request ID: <code>([^<]+)</code>", page)
    assert shown is not None
    await settled(gateway_run, shown.group(1))
    assert one(access_lines(gateway_run), shown.group(1))["status"] == 403
    assert one(audit_lines(gateway_run), shown.group(1))["decision"] == "deny"


async def test_sensitive_query_values_are_redacted_in_the_access_line(
    gateway_run: GatewayProcess,
) -> None:
    response = await raw_request(
        gateway_run.port, "/_gateway/callback?code=SECRETCODE123&state=SECRETSTATE&x=1"
    )
    rid = response.header("X-Request-Id")
    assert rid is not None
    await settled(gateway_run, rid)
    line = one(access_lines(gateway_run), rid)
    assert line["target"] == "/_gateway/callback?code=REDACTED&state=REDACTED&x=1"
    assert "SECRETCODE123" not in gateway_run.output()
    assert "SECRETSTATE" not in gateway_run.output()


# ---------------------------------------------------------------------- request ids


async def test_a_clients_own_request_id_is_replaced_everywhere(
    gateway_run: GatewayProcess, signed_in_as: dict[str, aiohttp.ClientSession]
) -> None:
    """From a peer that is not a trusted proxy, X-Request-Id is the client's word: the
    gateway makes its own, sends it upstream instead, answers with it and logs it."""
    async with signed_in_as["alice"].get(
        f"{gateway_run.url}/api/echo", headers={**API, "X-Request-Id": "forged-id-1"}
    ) as response:
        echoed = await response.json()
        rid = response.headers.getall("X-Request-Id")
    assert len(rid) == 1 and OUR_ID.fullmatch(rid[0])
    assert upstream_saw(echoed, "X-Request-Id") == rid
    assert "forged-id-1" not in json.dumps(echoed["headers"])
    await settled(gateway_run, rid[0])
    assert "forged-id-1" not in gateway_run.output()


async def test_a_trusted_proxys_request_id_is_kept_and_forwarded(
    trusting_run: GatewayProcess, fake_hf: FakeHF
) -> None:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        await trusting_run.sign_in(http, fake_hf, "alice")
        async with http.get(
            f"{trusting_run.url}/api/echo",
            headers={**API, "X-Request-Id": "lb-7f3a.2:b_c-9", "X-Forwarded-For": "203.0.113.9"},
        ) as response:
            echoed = await response.json()
            assert response.headers.getall("X-Request-Id") == ["lb-7f3a.2:b_c-9"]
        assert upstream_saw(echoed, "X-Request-Id") == ["lb-7f3a.2:b_c-9"]
        # Malformed ids from the trusted proxy itself are replaced: its word, but no line break
        # or unbounded text goes into the log.
        for bad in ("has space", "x" * 129, "semi;colon", ""):
            async with http.get(
                f"{trusting_run.url}/api/echo", headers={**API, "X-Request-Id": bad}
            ) as response:
                assert OUR_ID.fullmatch(response.headers["X-Request-Id"]), bad
    await settled(trusting_run, "lb-7f3a.2:b_c-9")
    line = one(access_lines(trusting_run), "lb-7f3a.2:b_c-9")
    assert line["remote"] == "203.0.113.9"  # the client the trusted proxy names
    assert "has space" not in trusting_run.output()


async def test_every_kind_of_answer_carries_the_request_id_of_its_log_lines(
    gateway_run: GatewayProcess, signed_in_as: dict[str, aiohttp.ClientSession]
) -> None:
    alice = signed_in_as["alice"]
    url = gateway_run.url
    ids: dict[str, str] = {}
    kinds: list[tuple[str, aiohttp.ClientSession, str, dict[str, str], int]] = [
        ("proxied", alice, "/api/echo", API, 200),
        ("proxied page", alice, "/", BROWSER, 200),
        ("sign-in redirect", signed_in_as["dave"], "/writers/y", BROWSER, 403),
        ("healthz", alice, "/_gateway/healthz", {}, 200),
        ("jwks", alice, "/_gateway/jwks.json", {}, 200),
        ("userinfo", alice, "/_gateway/userinfo", {}, 200),
        ("sign-in page", alice, "/_gateway/sign_in", BROWSER, 200),
        ("gateway 404", alice, "/_gateway/nothing", API, 404),
        ("bad path", alice, "/a%2fb", API, 400),
    ]
    for kind, http, path, headers, status in kinds:
        async with http.get(url + path, headers=headers, allow_redirects=False) as response:
            assert response.status == status, kind
            ids[kind] = response.headers["X-Request-Id"]
    async with aiohttp.ClientSession() as anonymous:
        async with anonymous.get(url + "/x", headers=BROWSER, allow_redirects=False) as response:
            assert response.status == 302
            ids["redirect"] = response.headers["X-Request-Id"]
        async with anonymous.get(url + "/x", headers=API) as response:
            assert response.status == 401
            ids["401"] = response.headers["X-Request-Id"]
    async with alice.ws_connect(url + "/api/ws", origin=url) as ws:
        assert ws._response.status == 101
        ids["websocket 101"] = ws._response.headers["X-Request-Id"]
        assert (await ws.receive()).data == "hello alice"
    assert len(set(ids.values())) == len(ids)  # one id per request
    await settled(gateway_run, ids["websocket 101"])
    logged = access_lines(gateway_run)
    for kind, rid in ids.items():
        assert one(logged, rid)["request_id"] == rid, kind


# ---------------------------------------------------------------------- format, escaping


async def test_the_text_format_writes_key_value_lines(
    fake_hf: FakeHF,
    upstream: str,
    redis_server: RedisServer,
    tmp_path: Path,
    stopped: list[GatewayProcess],
) -> None:
    process = GatewayProcess(
        tmp_path, issuer=fake_hf.issuer, upstream=upstream, redis_url=redis_server.url
    )
    configured(process, logging__format="text")
    stopped.append(process)
    await process.start()
    response = await raw_request(process.port, "/api/echo", [("Accept", "application/json")])
    rid = response.header("X-Request-Id")
    assert response.status == 401 and rid
    await settled(process, rid)
    text = process.output()
    assert not text.lstrip().startswith("{")
    access = [line for line in text.splitlines() if " gateway.access " in line and rid in line]
    assert len(access) == 1
    assert re.match(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO gateway\.access \[\d+\] ", access[0]
    )
    for part in (f"request_id={rid}", "route=tool", "method=GET", "status=401", 'user=""'):
        assert part in access[0]


async def test_access_and_audit_lines_can_be_turned_off(
    fake_hf: FakeHF,
    upstream: str,
    redis_server: RedisServer,
    tmp_path: Path,
    stopped: list[GatewayProcess],
) -> None:
    process = GatewayProcess(
        tmp_path, issuer=fake_hf.issuer, upstream=upstream, redis_url=redis_server.url
    )
    configured(process, logging__access=False, logging__audit=False)
    stopped.append(process)
    await process.start()
    response = await raw_request(process.port, "/api/echo", [("Accept", "application/json")])
    assert response.status == 401 and OUR_ID.fullmatch(response.header("X-Request-Id") or "")
    await asyncio.sleep(0.3)
    loggers = {line["logger"] for line in lines_of(process)}
    assert loggers and not loggers & {"gateway.access", "gateway.audit"}


@pytest.mark.parametrize("log_format", ["json", "text"])
async def test_a_hostile_target_and_user_agent_stay_on_their_line(
    fake_hf: FakeHF,
    upstream: str,
    redis_server: RedisServer,
    tmp_path: Path,
    stopped: list[GatewayProcess],
    log_format: str,
) -> None:
    """A User-Agent with a Unicode line separator, NEL and an escape sequence, a target
    with raw UTF-8: each line still ends where it should, and nothing starts a line of its
    own; the plain twin reads as sent."""
    process = GatewayProcess(
        tmp_path, issuer=fake_hf.issuer, upstream=upstream, redis_url=redis_server.url
    )
    configured(process, logging__format=log_format)
    stopped.append(process)
    await process.start()
    forged = "FORGED-LINE INFO gateway.access"
    hostile_agent = "x\u2028" + forged + "\x85" + forged + "\u202e"
    hostile = await raw_request(
        process.port,
        "/caf\u00e9\u2028FORGED?a=\u2029".encode(),
        [("Accept", "application/json"), ("User-Agent", "UA")],
    )
    twin = await raw_request(
        process.port, "/plain", [("Accept", "application/json"), ("User-Agent", "plain-agent/1")]
    )
    # A header with raw non-ASCII bytes, as a hostile client would write it.
    raw_agent = await raw_socket_request(process.port, hostile_agent.encode("utf-8"))
    ids = [hostile.header("X-Request-Id"), twin.header("X-Request-Id"), raw_agent]
    for rid in ids:
        assert rid
        await settled(process, rid)
    text = process.output()
    lines = text.splitlines()
    assert not [line for line in lines if line.startswith("FORGED")]
    assert "\u2028" not in text and "\u2029" not in text and "\x85" not in text
    assert "\u202e" not in text
    plain = [line for line in lines if twin.header("X-Request-Id") in line and "access" in line]
    assert len(plain) == 1 and "plain-agent/1" in plain[0] and "/plain" in plain[0]
    hostile_lines = [line for line in lines if raw_agent in line and "access" in line]
    assert len(hostile_lines) == 1
    if log_format == "json":
        assert json.loads(hostile_lines[0])["user_agent"] == hostile_agent
    else:
        assert "\\u2028FORGED-LINE" in hostile_lines[0]


async def raw_socket_request(port: int, agent: bytes) -> str:
    """GET /ua with ``agent`` as raw User-Agent bytes; returns the answer's request id."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"GET /ua HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\nUser-Agent: "
        + agent
        + b"\r\nConnection: close\r\n\r\n"
    )
    head = (await reader.read(65536)).decode("latin-1")
    writer.close()
    found = re.search(r"(?im)^X-Request-Id: (\S+)\r$", head)
    assert found is not None, head
    return found.group(1)


# ---------------------------------------------------------------------- repeated faults


async def test_a_redis_outage_is_a_few_lines_with_counts_not_one_per_request(
    fake_hf: FakeHF, upstream: str, tmp_path: Path, stopped: list[GatewayProcess]
) -> None:
    """Redis is killed while a signed-in client keeps asking: every request is refused
    (503) and counted, but the log holds one line for the first refusal and then one line
    per second (the fault window) with the count; the counts add up to every refusal."""
    redis = RedisServer().start()
    try:
        process = GatewayProcess(
            tmp_path,
            issuer=fake_hf.issuer,
            upstream=upstream,
            redis_url=redis.url,
            session={"warm_cache": False},  # every request asks Redis
        )
        configured(process, logging__fault_window="1s")
        stopped.append(process)
        await process.start()
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            await process.sign_in(http, fake_hf, "alice")
            async with http.get(f"{process.url}/api/echo", headers=API) as response:
                assert response.status == 200  # the twin: with Redis up, it is served
            redis.kill()
            refused = 0
            loop = asyncio.get_running_loop()
            until = loop.time() + 3.0

            async def client() -> None:
                nonlocal refused
                while loop.time() < until:
                    async with http.get(f"{process.url}/api/echo", headers=API) as answer:
                        assert answer.status == 503
                        refused += 1

            await asyncio.gather(*(client() for _ in range(4)))
        process.stop()  # the drain writes the count still open
    finally:
        redis.cleanup()
    lines = [line for line in lines_of(process) if line["logger"] == "gateway.web.caller"]
    assert refused >= 100
    assert lines[0]["msg"].startswith("session store unavailable: redis")
    assert lines[0]["level"] == "ERROR" and "repeated" not in lines[0]
    counted = [line["repeated"] for line in lines[1:]]
    assert all(line["msg"].endswith("s)") and "repeated" in line["msg"] for line in lines[1:])
    assert 2 <= len(lines) <= 6  # about one per second of the outage, not one per request
    assert 1 + sum(counted) == refused
    assert all(OUR_ID.fullmatch(line["last_request_id"]) for line in lines[1:])


async def test_two_workers_on_one_output_never_interleave_their_lines(
    fake_hf: FakeHF,
    upstream: str,
    redis_server: RedisServer,
    tmp_path: Path,
    stopped: list[GatewayProcess],
) -> None:
    """Two workers write batches of access lines to the same output: every line of it is
    still one whole JSON object, both workers wrote, and every request has its line."""
    process = GatewayProcess(
        tmp_path,
        issuer=fake_hf.issuer,
        upstream=upstream,
        redis_url=redis_server.url,
        server={"workers": 2},
    )
    stopped.append(process)
    await process.start(ready_within=30)
    for _ in range(600):
        if "ready: 2 workers listening" in process.output():
            break
        await asyncio.sleep(0.05)
    ids: list[str] = []
    # A new connection per request: the kernel spreads them over both workers' sockets.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:

        async def client() -> None:
            for _ in range(100):
                async with http.get(
                    f"{process.url}/api/echo", headers={**API, "User-Agent": "a long agent " * 25}
                ) as response:
                    ids.append(response.headers["X-Request-Id"])

        await asyncio.gather(*(client() for _ in range(8)))
    process.stop()
    logged = access_lines(process)  # every line parses
    assert {line["request_id"] for line in logged} >= set(ids)
    assert len({line["pid"] for line in logged if line["request_id"] in set(ids)}) == 2


async def test_a_request_the_parser_refuses_still_gets_an_id_in_its_answer_and_line(
    gateway_run: GatewayProcess,
) -> None:
    """A header line with a NUL byte never reaches the pipeline; aiohttp's 400 still
    carries an id, and the access line (route "") has the same one."""
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway_run.port)
    writer.write(b"GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Bad: a\x00b\r\n\r\n")
    head = (await reader.read(65536)).decode("latin-1")
    writer.close()
    assert head.split(" ", 2)[1] == "400"
    found = re.search(r"(?im)^X-Request-Id: (\S+)\r$", head)
    assert found is not None and OUR_ID.fullmatch(found.group(1))
    await settled(gateway_run, found.group(1))
    line = one(access_lines(gateway_run), found.group(1))
    assert (line["status"], line["route"]) == (400, "")
