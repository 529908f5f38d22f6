"""gateway/logs.py: line formats, request ids, the deciding rule, the fault log, and the
secret scan of tests/support/log_scan.py (which must be able to fail)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import select
import time
from pathlib import Path

import pytest

from gateway.logs import (
    EscapingFormatter,
    FaultLog,
    JsonFormatter,
    LineHandler,
    audit,
    begin_trace,
    deciding_rule,
    emit,
    escape_for_log,
    flush_lines,
    incoming_request_id,
    new_request_id,
    redact_target,
)
from gateway.policy import Decision, Reason, ReasonCode
from tests.support.log_scan import SecretScan, fixture_secrets


def record(msg: str, *args: object, fields: dict[str, object] | None = None) -> logging.LogRecord:
    extra = {"fields": fields} if fields is not None else None
    return logging.getLogger("gateway.test").makeRecord(
        "gateway.test", logging.INFO, "", 0, msg, args, None, extra=extra
    )


def test_a_json_line_is_one_object_whatever_the_values_hold() -> None:
    hostile = "a\nb\r\u2028c\x1b\u202e\x00"
    line = JsonFormatter().format(record("user %s", hostile, fields={"user_agent": hostile}))
    assert "\n" not in line and "\r" not in line
    assert all(32 <= ord(c) < 127 for c in line)  # ensure_ascii: nothing raw survives
    parsed = json.loads(line)
    assert parsed["msg"] == "user " + hostile and parsed["user_agent"] == hostile
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", parsed["ts"])
    assert (parsed["level"], parsed["logger"]) == ("INFO", "gateway.test")


async def test_a_line_carries_the_request_id_of_the_request_being_handled() -> None:
    async def handled() -> str:
        begin_trace("req-1")
        return JsonFormatter().format(record("inside"))

    inside = json.loads(await asyncio.create_task(handled()))
    outside = json.loads(JsonFormatter().format(record("outside")))
    assert inside["request_id"] == "req-1"
    assert "request_id" not in outside  # the task's trace never leaks out of it


def test_a_text_line_escapes_the_message_and_every_field() -> None:
    line = EscapingFormatter().format(
        record("user %s", "m\nFORGED", fields={"user": "m\nFORGED", "empty": "", "n": 3})
    )
    assert "\n" not in line
    assert "user m\\x0aFORGED" in line
    assert "user=m\\x0aFORGED" in line and 'empty=""' in line and "n=3" in line


def test_escape_for_log_covers_line_separators_and_bidirectional_controls() -> None:
    assert escape_for_log("a\u2028b\u202ec\u2066d\x85") == "a\\u2028b\\u202ec\\u2066d\\x85"
    assert escape_for_log("plain text, é") == "plain text, é"


def test_request_ids_are_unique_and_incoming_ones_strictly_checked() -> None:
    ids = {new_request_id() for _ in range(10_000)}
    assert len(ids) == 10_000
    assert all(re.fullmatch(r"[0-9a-f]{20}", i) for i in ids)
    for good in ("abc", "0f8fad5b-d9cb-469f-a165-70867728950e", "lb.1:2_3-4", "x" * 128):
        assert incoming_request_id(good) == good
    for bad in (None, "", "x" * 129, "a b", "a\nb", "a;b", "é", "a\u2028"):
        assert incoming_request_id(bad) is None


def test_redaction_keeps_plain_targets_and_masks_sensitive_values() -> None:
    assert redact_target("/a/b?x=1") == "/a/b?x=1"
    assert redact_target("/cb?code=abc&state=s&x=1") == "/cb?code=REDACTED&state=REDACTED&x=1"
    assert redact_target("/t?access_token=hf_x#f") == "/t?access_token=REDACTED#f"


@pytest.mark.parametrize(
    ("decision", "rule"),
    [
        (Decision(True, (Reason(ReasonCode.ALLOWED, "allow[1]"),)), "allow[1]"),
        (Decision(False, (Reason(ReasonCode.DENIED, "deny[0]"),)), "deny[0]"),
        (Decision(True, (Reason(ReasonCode.PUBLIC, "public_paths[2]"),)), "public_paths[2]"),
        (Decision(True, (Reason(ReasonCode.PUBLIC),)), "public"),
        (
            Decision(False, (Reason(ReasonCode.NO_MATCHING_ALLOW), Reason(ReasonCode.RULE_FAILED))),
            "no_allow",
        ),
        (Decision(False, (Reason(ReasonCode.UNAUTHENTICATED),)), "unauthenticated"),
    ],
)
def test_the_deciding_rule_comes_from_the_first_reason(decision: Decision, rule: str) -> None:
    assert deciding_rule(decision) == rule


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def fault_logger() -> logging.Logger:
    logger = logging.getLogger("gateway.test.faults")
    logger.setLevel(logging.INFO)
    return logger


async def test_a_repeated_fault_is_one_line_then_one_count_per_window(
    fault_logger: logging.Logger,
) -> None:
    lines = Lines()
    fault_logger.addHandler(lines)
    faults = FaultLog(window=0.2)
    try:
        for n in range(500):
            faults.log(fault_logger, logging.ERROR, "store down: %s", f"op{n}")
        faults.log(fault_logger, logging.ERROR, "another fault")  # its own first line
        assert [r.getMessage() for r in lines.records] == ["store down: op0", "another fault"]
        await asyncio.sleep(0.3)  # the window ends with no new fault: its count is written
        summary = lines.records[2]
        assert summary.getMessage().startswith("store down: op499 (repeated 499 times in the last")
        assert summary.levelno == logging.ERROR
        assert summary.__dict__["fields"]["repeated"] == 499
        await asyncio.sleep(0.3)  # a quiet window: the next one is news again
        faults.log(fault_logger, logging.ERROR, "store down: %s", "again")
        assert lines.records[-1].getMessage() == "store down: again"
        assert len(lines.records) == 4
    finally:
        faults.reset()
        fault_logger.removeHandler(lines)


def test_faults_below_the_level_are_not_even_counted(fault_logger: logging.Logger) -> None:
    faults = FaultLog(window=10)
    faults.log(fault_logger, logging.DEBUG, "noise")
    assert not faults._open  # noqa: SLF001 - the one place that shows nothing was kept


def test_emit_writes_fields_without_a_caller_lookup(fault_logger: logging.Logger) -> None:
    lines = Lines()
    fault_logger.addHandler(lines)
    try:
        emit(fault_logger, logging.INFO, "request", {"status": 200})
    finally:
        fault_logger.removeHandler(lines)
    assert lines.records[0].__dict__["fields"] == {"status": 200}
    assert lines.records[0].lineno == 0


# ---------------------------------------------------------------------- the secret scan


COOKIE = "v1." + "A" * 43 + "." + "b" * 43


@pytest.mark.parametrize(
    ("planted", "what"),
    [
        (f"cookie hf_gateway={COOKIE}", "session cookie"),
        ("Authorization: Bearer hf_abcdefghijklmnopqrstuvwx", "Hugging Face token"),
        ("token hf_oauth_Zx81-kq_0123456789abcdefgh", "Hugging Face token"),
        ("assertion eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2ln", "JWT"),
        ("sealed " + "Q" * 250, "sealed value"),
        ('{"msg": "secret test-secret-' + "x" * 40 + '"}', "known secret"),
        ("escaped \\nissued-code-0123456789abc&x", "known secret"),
    ],
)
def test_the_scan_finds_a_planted_secret(tmp_path: Path, planted: str, what: str) -> None:
    """Each kind of secret, planted in an in-process line or a process's log file, fails
    the scan; the same lines without it (the twin) pass."""
    known = fixture_secrets() | {"issued-code-0123456789abc"}
    output = tmp_path / "gateway.log"
    output.write_text('{"msg": "started"}\n' + planted + "\n")
    scan = SecretScan(lines=[planted], files=[output])
    hits = scan.hits(known)
    assert [h.what for h in hits] == [what, what]
    assert all(planted not in h.shown() for h in hits)  # the report masks the secret
    clean = SecretScan(
        lines=["GET /x 200 request_id=4f2a9c1b0d3e00000001 hf_gateway_login"], files=[output]
    )
    output.write_text('{"msg": "started", "route": "tool"}\n')
    assert clean.hits(known) == []


# ---------------------------------------------------------------------- lines made later


async def test_an_audit_line_is_made_later_with_its_requests_id_and_time(
    fault_logger: logging.Logger,
) -> None:
    del fault_logger
    audit_log = logging.getLogger("gateway.audit")
    lines = Lines()
    audit_log.addHandler(lines)
    audit_log.setLevel(logging.INFO)
    decision = Decision(True, (Reason(ReasonCode.ALLOWED, "allow[0]"),))

    async def handled() -> None:
        begin_trace("req-9")
        audit("tool", "authenticated", "allow", decision, "alice", "sub-1")

    try:
        noted_at = time.time()
        await asyncio.create_task(handled())
        assert lines.records == []  # noted on the request path, not made yet
        flush_lines()
    finally:
        audit_log.removeHandler(lines)
        audit_log.setLevel(logging.NOTSET)
    made = json.loads(JsonFormatter().format(lines.records[0]))
    assert made["request_id"] == "req-9"  # the request's, though made outside it
    assert abs(lines.records[0].created - noted_at) < 0.5
    assert (made["user"], made["rule"], made["reasons"]) == ("alice", "allow[0]", ["allowed"])


def test_the_line_handler_batches_access_lines_and_keeps_the_order() -> None:
    stream = io.StringIO()
    handler = LineHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("gateway.test.lines")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        emit(logger, logging.INFO, "request", {"n": 1})  # no event loop: written at once
        assert json.loads(stream.getvalue())["n"] == 1
        handler._waiting.append(record("waiting", fields={"n": 2}))  # noqa: SLF001
        logger.warning("a warning")  # writes what waited first
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["msg"] for line in lines] == ["request", "waiting", "a warning"]


class Writes(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


def test_a_batch_is_written_in_whole_lines_of_at_most_pipe_buf_bytes() -> None:
    """Workers share one pipe: a write of at most PIPE_BUF bytes is never interleaved with
    another process's, so each write holds whole lines and stays under it."""
    stream = Writes()
    handler = LineHandler(stream)
    handler.setFormatter(JsonFormatter())
    for n in range(300):
        handler._waiting.append(record("request", fields={"n": n, "pad": "x" * 200}))  # noqa: SLF001
    handler.flush()
    assert len(stream.writes) > 10
    assert all(len(w) <= select.PIPE_BUF and w.endswith("\n") for w in stream.writes)
    assert [json.loads(line)["n"] for line in stream.getvalue().splitlines()] == list(range(300))


HOSTILE = 'a\nb\u2028"\\\u202e\x00é'


@pytest.mark.parametrize(
    "values",
    [
        ("rid-1", "tool", "alice", "sub-1", "", 0.00042, "GET", "/x?code=1", 200, 1655, 0.0012),
        ("rid-2", "", "", "", "203.0.113.9", None, "POST", "/" + HOSTILE, 403, 0, 0.5),
    ],
)
def test_access_lines_written_directly_are_the_lines_the_formatter_writes(
    values: tuple[object, ...],
) -> None:
    """With only the gateway's own JSON handler listening, noted lines skip the logging
    module; the text must be exactly what a record through JsonFormatter gives."""
    from gateway import logs

    noted = (1_733_338_800.125, *values, "127.0.0.1", HOSTILE)
    direct = logs._access_json(*noted)  # noqa: SLF001
    lines = Lines()
    access_log = logging.getLogger("gateway.access")
    access_log.addHandler(lines)
    access_log.setLevel(logging.INFO)
    try:
        logs._access_line(*noted)  # noqa: SLF001
    finally:
        access_log.removeHandler(lines)
        access_log.setLevel(logging.NOTSET)
    assert direct == JsonFormatter().format(lines.records[0])
    assert json.loads(direct)["user_agent"] == HOSTILE


@pytest.mark.parametrize("request_id", ["rid-3", None])
def test_audit_lines_written_directly_are_the_lines_the_formatter_writes(
    request_id: str | None,
) -> None:
    from gateway import logs

    noted = (1_733_338_800.5, request_id, "writers", "writers", "deny")
    noted += (("no_matching_allow", "rule_failed"), "no_allow", HOSTILE, "sub-2")
    direct = logs._audit_json(*noted)  # noqa: SLF001
    lines = Lines()
    audit_log = logging.getLogger("gateway.audit")
    audit_log.addHandler(lines)
    audit_log.setLevel(logging.INFO)
    try:
        logs._audit_line(*noted)  # noqa: SLF001
    finally:
        audit_log.removeHandler(lines)
        audit_log.setLevel(logging.NOTSET)
    assert direct == JsonFormatter().format(lines.records[0])
    assert json.loads(direct)["user"] == HOSTILE
