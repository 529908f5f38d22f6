"""Logging: JSON (or text) lines, request ids, access and audit lines, rate-limited faults.

Everything that decides how a log line looks lives here, so the lines stay one shape
whichever process (a worker, the supervisor, a CLI verb) writes them (docs/logs.md).

* Every line written while a request is handled carries its request id: the pipeline
  starts a ``Trace`` for the request in a context variable (aiohttp runs each request in
  a task of its own, so the variable never leaks into the next request).
* The access line (logger ``gateway.access``) is written by aiohttp's access-log hook
  once the answer is out, from what the pipeline noted on the trace; the audit line
  (``gateway.audit``) once per access decision. Both skip ``Logger.info`` (no caller
  lookup) and cost nothing when their logger is off.
* A value a client or the provider chose is escaped: JSON escaping in JSON lines
  (``ensure_ascii``: no raw control character or line separator survives), and
  ``escape_for_log`` in text lines.
"""

from __future__ import annotations

import asyncio
import atexit
import contextvars
import gc
import itertools
import json
import logging
import math
import os
import re
import select
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii
from typing import TYPE_CHECKING, Any, Final, Literal

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

if TYPE_CHECKING:
    from gateway.config.models import LoggingConfig
    from gateway.policy import Decision

ACCESS_LOGGER: Final = "gateway.access"
AUDIT_LOGGER: Final = "gateway.audit"
REQUEST_ID_HEADER: Final = "X-Request-Id"
_FIELDS = "fields"
"""The LogRecord attribute holding a line's structured fields (a dict)."""

_SENSITIVE_PARAM = re.compile(
    r"(?i)([?&](?:code|state|token|access_token|id_token|refresh_token|client_secret|"
    r"password|secret|key|session|nonce)=)[^&#]*"
)


def redact_target(target: str) -> str:
    """A request target safe to log: sensitive query values replaced."""
    if "=" not in target:  # nothing to redact: skip the regular expression
        return target
    return _SENSITIVE_PARAM.sub(r"\1REDACTED", target)


# ------------------------------------------------------------------ request ids


_INCOMING_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
"""What an X-Request-Id from a trusted proxy may look like (UUIDs, hex, nginx's
$request_id, Envoy's); anything else is replaced by an id of our own."""


class _IdSource:
    """Request ids: a random per-process prefix and a counter, 20 hex digits.

    Unique across processes and replicas (48 random bits per process) without a random
    draw per request; an id is a name for a request, not a secret.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.prefix = os.urandom(6).hex()
        self.counter = itertools.count(1)

    def next(self) -> str:
        return f"{self.prefix}{next(self.counter):08x}"


_IDS = _IdSource()
if hasattr(os, "register_at_fork"):  # a forked child must not repeat its parent's ids
    os.register_at_fork(after_in_child=_IDS.reset)


def new_request_id() -> str:
    return _IDS.next()


def incoming_request_id(value: str | None) -> str | None:
    """A request id a trusted proxy sent, if it is one we keep; None otherwise."""
    if value and _INCOMING_ID.fullmatch(value):
        return value
    return None


class Trace:
    """What the log needs to know about one request, noted as the pipeline learns it."""

    __slots__ = ("client", "id", "route", "started", "sub", "upstream", "user")

    def __init__(self, request_id: str) -> None:
        self.id = request_id
        self.started = _monotonic()
        """When the pipeline took the request (the event loop's clock counts whole
        milliseconds under uvloop: too coarse for the access line's duration)."""
        self.route = ""
        self.user = ""
        self.sub = ""
        self.client = ""
        """The client's address as a trusted proxy reported it ("" : the peer)."""
        self.upstream: float | None = None
        """Seconds the upstream hop took (None: no upstream was asked)."""


_TRACE: contextvars.ContextVar[Trace | None] = contextvars.ContextVar("trace", default=None)


def begin_trace(request_id: str) -> Trace:
    """Start the trace of the request the current task handles."""
    trace = Trace(request_id)
    _TRACE.set(trace)
    return trace


def current_trace() -> Trace | None:
    return _TRACE.get()


def current_request_id() -> str | None:
    trace = _TRACE.get()
    return trace.id if trace is not None else None


# ------------------------------------------------------------------ formatting


class _Clock:
    """RFC 3339 UTC timestamps with milliseconds; the seconds part formatted once a second."""

    second = -1
    text = ""

    @classmethod
    def stamp(cls, created: float) -> str:
        second = int(created)
        if second != cls.second:
            cls.text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            cls.second = second
        return f"{cls.text}.{int((created - second) * 1000):03d}Z"


def _request_id_of(record: logging.LogRecord, fields: Mapping[str, object] | None) -> object:
    """The line's request id: its own field, else the record's, else the current request's."""
    if fields and "request_id" in fields:
        return fields["request_id"]
    rid = record.__dict__.get("request_id")
    return rid if rid is not None else current_request_id()


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, pid, msg, request_id, then the line's
    fields.

    ``json.dumps`` escapes every control character and, with ``ensure_ascii``, every
    non-ASCII one (U+2028 included): a value can never end the line it is in.
    """

    def format(self, record: logging.LogRecord) -> str:
        fields = record.__dict__.get(_FIELDS)
        if fields and "request_id" not in fields and not record.exc_info:
            # An access or audit line: the fixed head, then the fields encoded as they are
            # (no merged dict; the head's parts of a logger are encoded once).
            rid = record.__dict__.get("request_id") or current_request_id()
            head = _HEADS.get((record.name, record.levelname, record.process))
            if head is None:
                head = _head(record.name, record.levelname, record.process)
            return (
                f'{{"ts": "{_Clock.stamp(record.created)}"{head}{_quoted(record.getMessage())}'
                + (f', "request_id": {_quoted(rid)}, ' if type(rid) is str else ", ")
                + _encode_fields(fields)
            )
        data: dict[str, Any] = {
            "ts": _Clock.stamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "msg": record.getMessage(),
        }
        rid = _request_id_of(record, fields)
        if rid is not None:
            data["request_id"] = rid
        if fields:
            data.update(fields)
            if rid is None:
                data.pop("request_id", None)
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            data["exc"] = record.exc_text
        return _ENCODE(data)


_HEADS: dict[tuple[str, str, int | None], str] = {}
_quoted = encode_basestring_ascii
"""json's own C string encoder: quotes, and escapes every control and non-ASCII character."""
_KEYS: dict[str, str] = {}


def _encode_fields(fields: Mapping[str, object]) -> str:
    """A flat mapping as the rest of a JSON object (``"k": v, ...}``), by hand: about half
    of what the general encoder costs for an access line (strings go through the same C
    escaping; anything but a string, int, finite float or None through the encoder)."""
    parts = []
    for key, value in fields.items():
        name = _KEYS.get(key)
        if name is None:
            name = _quoted(key) + ": "
            if len(_KEYS) < 1024:
                _KEYS[key] = name
        kind = type(value)
        if kind is str:
            parts.append(name + _quoted(value))  # type: ignore[arg-type]
        elif kind is int:
            parts.append(name + str(value))
        elif value is None:
            parts.append(name + "null")
        elif kind is float and math.isfinite(value):  # type: ignore[arg-type]
            parts.append(name + repr(value))
        elif kind is list and all(type(item) is str for item in value):  # type: ignore[attr-defined]
            parts.append(name + "[" + ", ".join(map(_quoted, value)) + "]")  # type: ignore[call-overload]
        else:
            parts.append(name + _ENCODE(value))
    return ", ".join(parts) + "}"


def _head(name: str, level: str, pid: int | None) -> str:
    head = f', "level": {_ENCODE(level)}, "logger": {_ENCODE(name)}, "pid": {pid}, "msg": '
    if len(_HEADS) < 1024:
        _HEADS[(name, level, pid)] = head
    return head


_ENCODE = json.JSONEncoder(default=str).encode
"""One encoder for every line (``json.dumps(..., default=str)`` would build one per call)."""


_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028-\u202e\u2066-\u2069]")
"""C0 and C1 controls, Unicode line and paragraph separators, and the bidirectional
controls (which make a terminal show a line in another order than it is written)."""


def escape_for_log(text: str) -> str:
    """Control characters (CR and LF above all) and Unicode line breaks as visible escapes:
    a value a client or the provider chose can never start a log line of its own."""
    return _UNPRINTABLE.sub(_escape, text)


def _escape(found: re.Match[str]) -> str:
    code = ord(found.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _text_value(value: object) -> str:
    if isinstance(value, str):
        text = escape_for_log(value)
        if not text or " " in text or '"' in text or "=" in text:
            return json.dumps(text)
        return text
    if isinstance(value, list | tuple):
        return ",".join(escape_for_log(str(v)) for v in value) or '""'
    return "-" if value is None else str(value)


class EscapingFormatter(logging.Formatter):
    """Text lines: every message escaped, then ``request_id=`` and the fields as key=value
    (tracebacks, the gateway's own text, stay as they are)."""

    def __init__(self) -> None:
        super().__init__("%(ts)s %(levelname)s %(name)s [%(process)d] %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        record.message = escape_for_log(record.message)
        record.ts = _Clock.stamp(record.created)
        line = super().formatMessage(record)
        fields = record.__dict__.get(_FIELDS)
        rid = _request_id_of(record, fields)
        if rid is not None:
            line += f" request_id={rid}"
        if fields:
            line += "".join(
                f" {key}={_text_value(value)}"
                for key, value in fields.items()
                if key != "request_id"
            )
        return line


# ------------------------------------------------------------------ structured lines


def emit(
    logger: logging.Logger,
    level: int,
    msg: str,
    fields: Mapping[str, object],
    created: float | None = None,
    request_id: str | None = None,
) -> None:
    """Write one line with structured fields; the caller has checked the level.

    The record is a copy of one made once per logger and level, with the time, message
    and fields set: ``Logger.info`` would walk the stack for the caller and ``LogRecord``
    look up the thread, process and file name again for every line (together about a
    third of an access line's cost).
    """
    template = _TEMPLATES.get((logger.name, level))
    if template is None:
        made = logger.makeRecord(logger.name, level, "", 0, "", (), None)
        template = _TEMPLATES[(logger.name, level)] = dict(made.__dict__)
    record = _new_record(logging.LogRecord)
    values = record.__dict__
    values.update(template)
    now = time.time() if created is None else created
    values["created"] = now
    values["msecs"] = (now - int(now)) * 1000
    values["relativeCreated"] = (now - _START) * 1000
    values["msg"] = msg
    values[_FIELDS] = fields
    if request_id is not None:
        values["request_id"] = request_id
    logger.handle(record)


class _Noted:
    """Access and audit lines noted on the request path as plain tuples, made into log
    records off it: every ``FLUSH_AFTER`` (or ``BATCH`` lines) from a timer, in one tight
    loop, then written in one go by the LineHandler.

    Measured (benchmarks/log_cost.py), making and writing the two lines between requests
    cost two to three times what the same work costs in a loop; what stays on the
    request path is a tuple and an append. A line keeps the time and the
    request id of its request. Lines still noted when the process ends are written by
    ``flush_lines`` (serve.py, and at exit).
    """

    FLUSH_AFTER = 0.1
    BATCH = 512

    def __init__(self) -> None:
        self.noted: list[tuple[Any, ...]] = []
        self._timer: Any = None
        self._timer_loop: Any = None

    def add(self, item: tuple[Any, ...]) -> None:
        noted = self.noted
        noted.append(item)
        if len(noted) >= self.BATCH:
            self.run()
        elif self._timer is None or self._timer_loop.is_closed():  # (a loop that ended: tests)
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no event loop in this thread: nothing to wait for
                self.run()
                return
            self._timer = loop.call_later(self.FLUSH_AFTER, self.run, context=contextvars.Context())
            self._timer_loop = loop

    def run(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        noted, self.noted = self.noted, []
        if not noted:
            return
        # The records made here are freed as soon as they are written and hold no cycles:
        # a collection in the middle of the batch would only walk them.
        collecting = gc.isenabled()
        gc.disable()
        try:
            direct = _direct()
            if direct is not None:  # the lines as text, no records
                direct.write_lines([_DIRECT[make](*values) for make, *values in noted])
                return
            for make, *values in noted:
                make(*values)
            for handler in logging.getLogger().handlers:
                if isinstance(handler, LineHandler):
                    handler.flush()
        finally:
            if collecting:
                gc.enable()


_NOTED = _Noted()


def flush_lines() -> None:
    """Write every access and audit line still noted, and what the handlers hold."""
    _NOTED.run()
    for handler in logging.getLogger().handlers:
        handler.flush()


_TEMPLATES: dict[tuple[str, int], dict[str, Any]] = {}
_new_record = object.__new__
_START: float = getattr(logging, "_startTime", time.time())
"""What LogRecord measures relativeCreated from (the logging module's import)."""
if hasattr(os, "register_at_fork"):  # the process id is in the templates
    os.register_at_fork(after_in_child=_TEMPLATES.clear)


_access_log = logging.getLogger(ACCESS_LOGGER)
_audit_log = logging.getLogger(AUDIT_LOGGER)


class AccessLogger(AbstractAccessLogger):
    """One line per request, when the answer is out; never cookies, Authorization or
    OAuth codes (the target's sensitive query values are redacted).

    ``enabled`` follows the logger's level: aiohttp asks once per connection, and with
    access lines off it skips the call and even the clock read for it.
    """

    def __init__(self, logger: logging.Logger, log_format: str) -> None:
        del logger  # always gateway.access, whatever aiohttp passes (aiohttp.access)
        super().__init__(_access_log, log_format)

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        # Only what the request and its trace hold now, as plain values (a tuple of them
        # leaves the garbage collector's sight at its first pass); the line is made later.
        trace = _TRACE.get()
        if trace is None:  # refused before the pipeline (a malformed request)
            trace = Trace(new_request_id())
        else:
            time = _monotonic() - trace.started
        _NOTED.add(
            (
                _access_line,
                _clock(),
                trace.id,
                trace.route,
                trace.user,
                trace.sub,
                trace.client,
                trace.upstream,
                request.method,
                request.raw_path,
                response.status,
                response.body_length,
                time,
                request.remote,
                request.headers.get("User-Agent", ""),
            )
        )


def _access_line(
    created: float,
    rid: str,
    route: str,
    user: str,
    sub: str,
    client: str,
    upstream: float | None,
    method: str,
    target: str,
    status: int,
    size: int,
    took: float,
    remote: str | None,
    agent: str,
) -> None:
    fields = {
        "route": route,
        "method": method,
        "target": redact_target(target),
        "status": status,
        "bytes": size,
        "duration_ms": round(took * 1000, 3),
        "upstream_ms": None if upstream is None else round(upstream * 1000, 3),
        "user": user,
        "sub": sub,
        "remote": client or remote,
        "user_agent": agent,
    }
    emit(_access_log, logging.INFO, "request", fields, created, rid)


def _access_json(
    created: float,
    rid: str,
    route: str,
    user: str,
    sub: str,
    client: str,
    upstream: float | None,
    method: str,
    target: str,
    status: int,
    size: int,
    took: float,
    remote: str | None,
    agent: str,
) -> str:
    """The line ``_access_line`` makes, as JsonFormatter would write it, without the
    record (used when nothing but the gateway's own JSON handler reads the log)."""
    where = client or remote
    return (
        f'{{"ts": "{_Clock.stamp(created)}"{_head_of(ACCESS_LOGGER)}"request", '
        f'"request_id": {_quoted(rid)}, "route": {_quoted(route)}, '
        f'"method": {_quoted(method)}, "target": {_quoted(redact_target(target))}, '
        f'"status": {status}, "bytes": {size}, "duration_ms": {round(took * 1000, 3)!r}, '
        f'"upstream_ms": {"null" if upstream is None else repr(round(upstream * 1000, 3))}, '
        f'"user": {_quoted(user)}, "sub": {_quoted(sub)}, '
        f'"remote": {"null" if where is None else _quoted(where)}, '
        f'"user_agent": {_quoted(agent)}}}'
    )


def _head_of(name: str) -> str:
    head = _HEADS.get((name, "INFO", _PID[0]))
    return head if head is not None else _head(name, "INFO", _PID[0])


_PID = [os.getpid()]
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=lambda: _PID.__setitem__(0, os.getpid()))


_clock = time.time
_monotonic = time.monotonic


# ------------------------------------------------------------------ audit

AuditOutcome = Literal["allow", "deny", "unauthenticated"]


def audit_enabled() -> bool:
    return _audit_log.isEnabledFor(logging.INFO)


def deciding_rule(decision: Decision) -> str:
    """The rule that decided, from the decision's reasons (policy.evaluate puts it first):
    ``allow[0]``, ``deny[1]``, ``public_paths[0]``, ``require_scopes``; ``public`` for the
    public policy; ``no_allow`` when no allow rule matched (the policy's default deny)."""
    if not decision.reasons:
        return ""
    first = decision.reasons[0]
    if first.rule:
        return first.rule
    code = first.code.value
    if code == "no_matching_allow":
        return "no_allow"
    return code  # "public" (the built-in policy), "unauthenticated"


def audit(
    route: str,
    policy: str,
    outcome: AuditOutcome,
    decision: Decision | None,
    user: str = "",
    sub: str = "",
) -> None:
    """One audit line for one decision; the caller has checked ``audit_enabled``.
    Noted now, made with the request's time and id shortly after (``_Noted``)."""
    if decision is None:
        reasons: tuple[str, ...] = ("unauthenticated",)
        rule = "unauthenticated"
    else:
        known = _DECIDED.get(id(decision))
        if known is None or known[0] is not decision:
            if len(_DECIDED) >= 4096:
                _DECIDED.clear()
            known = (
                decision,
                tuple(r.code.value for r in decision.reasons),
                deciding_rule(decision),
            )
            _DECIDED[id(decision)] = known
        reasons, rule = known[1], known[2]
    _NOTED.add(
        (
            _audit_line,
            _clock(),
            current_request_id(),
            route,
            policy,
            outcome,
            reasons,
            rule,
            user,
            sub,
        )
    )


_DECIDED: dict[int, tuple[Decision, tuple[str, ...], str]] = {}
"""Reason codes and deciding rule per decision (AccessControl remembers decisions, so the
same few objects come back): kept with the decision, so an id is never reused."""


def _audit_line(
    created: float,
    request_id: str | None,
    route: str,
    policy: str,
    outcome: AuditOutcome,
    reasons: tuple[str, ...],
    rule: str,
    user: str,
    sub: str,
) -> None:
    fields = {
        "user": user,
        "sub": sub,
        "route": route,
        "policy": policy,
        "decision": outcome,
        "reasons": list(reasons),
        "rule": rule,
    }
    emit(_audit_log, logging.INFO, "decision", fields, created, request_id)


def _audit_json(
    created: float,
    request_id: str | None,
    route: str,
    policy: str,
    outcome: AuditOutcome,
    reasons: tuple[str, ...],
    rule: str,
    user: str,
    sub: str,
) -> str:
    """The line ``_audit_line`` makes, as JsonFormatter would write it (see _access_json)."""
    rid = "" if request_id is None else f'"request_id": {_quoted(request_id)}, '
    return (
        f'{{"ts": "{_Clock.stamp(created)}"{_head_of(AUDIT_LOGGER)}"decision", {rid}'
        f'"user": {_quoted(user)}, "sub": {_quoted(sub)}, "route": {_quoted(route)}, '
        f'"policy": {_quoted(policy)}, "decision": {_quoted(outcome)}, '
        f'"reasons": [{", ".join(map(_quoted, reasons))}], "rule": {_quoted(rule)}}}'
    )


_DIRECT: dict[object, Any] = {_access_line: _access_json, _audit_line: _audit_json}
"""How each noted line is written when it may skip the logging module (``_direct``)."""


def _direct() -> LineHandler | None:
    """The handler to write noted lines to as text directly: when the process's log is
    exactly configure_logging's one JSON LineHandler and nothing else could see a record
    (no other handler, no filter, the access and audit loggers plain). Otherwise the lines
    go through logging as records, for whatever else listens (tests, an embedding app)."""
    root = logging.getLogger()
    if len(root.handlers) != 1 or root.filters:
        return None
    handler = root.handlers[0]
    if type(handler) is not LineHandler or type(handler.formatter) is not JsonFormatter:
        return None
    if handler.filters:
        return None
    for logger in (_access_log, _audit_log, logging.getLogger("gateway")):
        if logger.handlers or logger.filters or not logger.propagate or logger.disabled:
            return None
    return handler


# ------------------------------------------------------------------ repeated faults


@dataclass(slots=True)
class _Repeats:
    since: float
    count: int = 0
    level: int = logging.ERROR
    args: tuple[object, ...] = ()
    last_request_id: str | None = None
    timer: Any = None


class FaultLog:
    """Repeated identical faults: the first is logged, the rest counted, and one line
    per window says how often it happened ("repeated N times in the last Xs").

    A fault is identified by its logger and message format (its call site), so "redis
    get failed" and "redis set failed" through one format count as one fault; the
    summary shows the latest arguments and the id of the latest request it hit.
    """

    def __init__(self, window: float = 10.0) -> None:
        self.window = window
        self._open: dict[tuple[str, str], _Repeats] = {}

    def log(self, logger: logging.Logger, level: int, msg: str, *args: object) -> None:
        if not logger.isEnabledFor(level):
            return
        key = (logger.name, msg)
        now = time.monotonic()
        state = self._open.get(key)
        if state is None:
            self._open[key] = _Repeats(now)
            logger.log(level, msg, *args, stacklevel=2)
            return
        state.count += 1
        state.level, state.args = level, args
        state.last_request_id = current_request_id()
        if now - state.since >= self.window:
            self._summarise(logger, key)
        elif state.timer is None:
            state.timer = self._schedule(logger, key, state.since + self.window - now)

    def _schedule(self, logger: logging.Logger, key: tuple[str, str], delay: float) -> Any:
        """A timer for the summary, so a fault that stops is still counted; run in an empty
        context (the summary belongs to no single request). None outside an event loop."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return None
        return loop.call_later(delay, self._summarise, logger, key, context=contextvars.Context())

    def _summarise(self, logger: logging.Logger, key: tuple[str, str]) -> None:
        state = self._open.get(key)
        if state is None:
            return
        if state.timer is not None:
            state.timer.cancel()
            state.timer = None
        now = time.monotonic()
        if state.count == 0:  # quiet for a whole window: the next one is news again
            del self._open[key]
            return
        emit(
            logger,
            state.level,
            (key[1] % state.args if state.args else key[1])
            + f" (repeated {state.count} times in the last {now - state.since:.0f}s)",
            {
                "repeated": state.count,
                "window_s": round(now - state.since, 1),
                "last_request_id": state.last_request_id,
            },
        )
        self._open[key] = _Repeats(now)
        self._open[key].timer = self._schedule(logger, key, self.window)

    def reset(self) -> None:
        """Forget every fault (tests: one test's fault must not silence the next one's)."""
        for state in self._open.values():
            if state.timer is not None:
                state.timer.cancel()
        self._open.clear()

    def flush(self) -> None:
        """Summarise every pending count now (at exit, and in tests)."""
        for key in list(self._open):
            self._summarise(logging.getLogger(key[0]), key)


FAULTS = FaultLog()
"""The process's fault log; configure_logging sets its window."""


def log_fault(logger: logging.Logger, level: int, msg: str, *args: object) -> None:
    """Log a fault that may repeat on every request (a dependency down): rate-limited."""
    FAULTS.log(logger, level, msg, *args)


# ------------------------------------------------------------------ set-up


_PIPE_BUF = getattr(select, "PIPE_BUF", 512)
"""The most a write to a pipe may hold and still never be interleaved with another
process's write (4096 on Linux)."""


class LineHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Lines to a stream; access and audit lines in batches.

    A structured INFO line (access, audit) waits, unformatted, until ``FLUSH_AFTER`` has
    passed or ``BATCH`` lines are waiting, then all are formatted and written together,
    in writes of whole lines of at most PIPE_BUF bytes each (so the lines of several
    workers sharing a pipe never interleave): formatting a batch in a tight loop costs
    about half of formatting lines one by one between requests, and a write carries about
    ten lines instead of one. Any other line (a
    warning, a message) is written at once, after the lines waiting before it, so the
    order holds. The request id is taken when the line is made. At exit, and on
    ``flush()``, everything waiting is written; a process killed with SIGKILL loses at
    most ``FLUSH_AFTER`` of access lines.
    """

    FLUSH_AFTER = 0.1
    BATCH = 256

    def __init__(self, stream: Any = None) -> None:
        super().__init__(stream)
        self._waiting: list[logging.LogRecord] = []
        self._timer: Any = None

    def emit(self, record: logging.LogRecord) -> None:
        values = record.__dict__
        if values.get(_FIELDS) is None or record.levelno > logging.INFO:
            if self._waiting:
                self._write_waiting()
            super().emit(record)
            return
        if "request_id" not in values:
            values["request_id"] = current_request_id()
        self._waiting.append(record)
        if len(self._waiting) >= self.BATCH:
            self._write_waiting()
        elif self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no event loop in this thread: no timer to wait for
                self._write_waiting()
                return
            self._timer = loop.call_later(
                self.FLUSH_AFTER, self._on_timer, context=contextvars.Context()
            )

    def _on_timer(self) -> None:
        self._timer = None
        with self.lock:  # type: ignore[union-attr]
            self._write_waiting()

    def _write_waiting(self) -> None:
        waiting, self._waiting = self._waiting, []
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not waiting:
            return
        try:
            self._write_lines([self.format(record) for record in waiting])
        except Exception:
            self.handleError(waiting[0])

    def write_lines(self, lines: list[str]) -> None:
        """Lines already formatted, after whatever waits (``_Noted``'s direct path)."""
        with self.lock:  # type: ignore[union-attr]
            self._write_waiting()
            try:
                self._write_lines(lines)
            except Exception:  # as Handler.handleError would, without a record to name
                if logging.raiseExceptions:
                    sys.stderr.write("--- hf-gateway: writing log lines failed\n")

    def _write_lines(self, lines: list[str]) -> None:
        # Writes of whole lines, each at most PIPE_BUF bytes: a pipe (a container's
        # stdout) takes each one whole, so the workers' lines never interleave.
        chunk: list[str] = []
        size = 0
        for text in lines:
            line = text + "\n"  # ASCII in JSON; near enough as text
            if chunk and size + len(line) > _PIPE_BUF:
                self._write("".join(chunk))
                chunk, size = [], 0
            chunk.append(line)
            size += len(line)
        if chunk:
            self._write("".join(chunk))

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._write_waiting()
        super().flush()


def configure_logging(
    config: LoggingConfig | None = None, *, fmt: Literal["json", "text"] | None = None
) -> None:
    """The process's log: one handler on stderr in the configured format (``fmt``
    overrides it: the demo writes text), the access and audit loggers on or off.
    ``HF_GATEWAY_LOG_LEVEL`` overrides the level."""
    chosen_format = fmt or (config.format if config is not None else "json")
    default: str = config.level if config is not None else "info"
    level = os.environ.get("HF_GATEWAY_LOG_LEVEL", default).upper()
    handler = LineHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if chosen_format == "json" else EscapingFormatter())
    logging.basicConfig(level=level, handlers=[handler])
    apply_switches(config)
    atexit.register(flush_lines)  # lines noted but not yet written, at any exit


def apply_switches(config: LoggingConfig | None) -> None:
    """Everything of ``config`` but the format, which a running process keeps: at start,
    and again on a reload (the level, the access and audit lines, the fault window)."""
    if config is not None:
        level = os.environ.get("HF_GATEWAY_LOG_LEVEL", config.level).upper()
        logging.getLogger().setLevel(level)
    access = config.access if config is not None else True
    audit_on = config.audit if config is not None else True
    # Access and audit lines are INFO by nature; their switches, not the level, decide.
    _access_log.setLevel(logging.INFO if access else logging.CRITICAL + 1)
    _audit_log.setLevel(logging.INFO if audit_on else logging.CRITICAL + 1)
    FAULTS.window = float(config.fault_window) if config is not None else 10.0
