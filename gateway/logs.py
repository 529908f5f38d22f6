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

import contextvars
import itertools
import json
import logging
import os
import re
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
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

    __slots__ = ("client", "id", "route", "sub", "upstream", "user")

    def __init__(self, request_id: str) -> None:
        self.id = request_id
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
        data: dict[str, Any] = {
            "ts": _Clock.stamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "msg": record.getMessage(),
        }
        fields = record.__dict__.get(_FIELDS)
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
        return json.dumps(data, default=str)


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


def emit(logger: logging.Logger, level: int, msg: str, fields: Mapping[str, object]) -> None:
    """Write one line with structured fields; the caller has checked the level.

    Builds the record directly: ``Logger.info`` would also walk the stack for the caller.
    """
    record = logger.makeRecord(logger.name, level, "", 0, msg, (), None, extra={_FIELDS: fields})
    logger.handle(record)


_access_log = logging.getLogger(ACCESS_LOGGER)
_audit_log = logging.getLogger(AUDIT_LOGGER)


class AccessLogger(AbstractAccessLogger):
    """One line per request, when the answer is out; never cookies, Authorization or
    OAuth codes (the target's sensitive query values are redacted).

    ``enabled`` follows the logger's level: aiohttp asks once per connection, and with
    access lines off it skips the call and even the clock read for it.
    """

    def __init__(self, logger: logging.Logger, log_format: str) -> None:
        super().__init__(_access_log if logger.name == "aiohttp.access" else logger, log_format)

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        trace = _TRACE.get()
        fields: dict[str, object]
        if trace is None:  # refused before the pipeline (a malformed request)
            fields = {"request_id": new_request_id(), "route": ""}
            user = sub = ""
            client = ""
            upstream = None
        else:
            fields = {"route": trace.route}
            user, sub, client, upstream = trace.user, trace.sub, trace.client, trace.upstream
        fields["method"] = request.method
        fields["target"] = redact_target(request.raw_path)
        fields["status"] = response.status
        fields["bytes"] = response.body_length
        fields["duration_ms"] = round(time * 1000, 3)
        fields["upstream_ms"] = None if upstream is None else round(upstream * 1000, 3)
        fields["user"] = user
        fields["sub"] = sub
        fields["remote"] = client or request.remote
        fields["user_agent"] = request.headers.get("User-Agent", "")
        emit(self.logger, logging.INFO, "request", fields)


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
    """One audit line for one decision; the caller has checked ``audit_enabled``."""
    if decision is None:
        reasons: list[str] = ["unauthenticated"]
        rule = "unauthenticated"
    else:
        reasons = [r.code.value for r in decision.reasons]
        rule = deciding_rule(decision)
    emit(
        _audit_log,
        logging.INFO,
        "decision",
        {
            "user": user,
            "sub": sub,
            "route": route,
            "policy": policy,
            "decision": outcome,
            "reasons": reasons,
            "rule": rule,
        },
    )


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
            import asyncio

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


def configure_logging(
    config: LoggingConfig | None = None, *, fmt: Literal["json", "text"] | None = None
) -> None:
    """The process's log: one handler on stderr in the configured format (``fmt``
    overrides it: the demo writes text), the access and audit loggers on or off.
    ``HF_GATEWAY_LOG_LEVEL`` overrides the level."""
    chosen_format = fmt or (config.format if config is not None else "json")
    default: str = config.level if config is not None else "info"
    level = os.environ.get("HF_GATEWAY_LOG_LEVEL", default).upper()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if chosen_format == "json" else EscapingFormatter())
    logging.basicConfig(level=level, handlers=[handler])
    access = config.access if config is not None else True
    audit_on = config.audit if config is not None else True
    # Access and audit lines are INFO by nature; their switches, not the level, decide.
    _access_log.setLevel(logging.INFO if access else logging.CRITICAL + 1)
    _audit_log.setLevel(logging.INFO if audit_on else logging.CRITICAL + 1)
    FAULTS.window = float(config.fault_window) if config is not None else 10.0
