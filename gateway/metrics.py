"""Every Prometheus series the gateway exports, defined once (prometheus-client).

Modules record into these series directly. They are process-global by design: with
``workers > 1`` each worker writes its own files under ``PROMETHEUS_MULTIPROC_DIR`` (set
by the supervisor before a worker imports this module) and the metrics listener adds them
up. Label values are always bounded: route names come from the config, reasons and
results from fixed code sets (the tuples below), methods are folded to a known few.

Where the labels are fixed, the children are bound here once (the ``*_BY_*`` maps), so
recording is a dict lookup and an increment; binding them at import also makes every
series visible with 0 from the first scrape, which rates and alert ratios need.
docs/metrics.md is generated from this module (scripts/metrics_reference.py).
"""

from __future__ import annotations

import platform
from collections.abc import Iterator, Mapping

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from gateway import __version__

# ``*_created`` samples exist only in one-process mode and nobody graphs them: off, so one
# worker and many export the same series.
disable_created_metrics()  # type: ignore[no-untyped-call]

REGISTRY = CollectorRegistry()
"""The gateway's own registry, not prometheus-client's default one: a module that is
imported again (a fresh import in a test) gets a fresh registry instead of a duplicate
series error. With one process the listener serves it, with the process's CPU, memory and
garbage-collector series; with workers > 1 it adds up the workers' files instead."""
for _collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
    REGISTRY.register(_collector)

LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)

# --------------------------------------------------------------------------- label sets

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other")
_METHOD_LABEL = {method: method for method in METHODS[:-1]}
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
DECISION_OUTCOMES = ("allow", "deny", "unauthenticated")
SIGN_IN_STARTED = ("new", "more_access")
"""``new``: a plain sign-in; ``more_access``: one that asks for extra scopes or orgs."""
SIGN_IN_FAILURES = (
    "no_state",
    "no_login",
    "used",
    "access_denied",
    "provider_error",
    "wrong_issuer",
    "no_code",
    "token_error",
    "invalid_id_token",
    "invalid_userinfo",
    "too_large",
    "store_unavailable",
    "provider_unavailable",
    "other",
)
REFRESH_RESULTS = ("ok", "rejected", "by_other", "gone", "lock_timeout", "unavailable")
REVALIDATION_RESULTS = (
    "ok",
    "token_rejected",
    "refresh_failed",
    "user_changed",
    "expired",
    "gone",
    "provider_unavailable",
    "store_unavailable",
)
WHOAMI_RESULTS = ("ok", "rejected", "rate_limited", "unavailable")
TOKEN_CACHE_RESULTS = ("hit", "refused_hit", "shared_refusal", "joined", "miss")
BEARER_ALLOWANCES = ("client", "fleet")
PROVIDER_ENDPOINTS = ("discovery", "jwks", "token", "userinfo", "whoami", "other")
STORE_OPERATIONS = (
    "get",
    "get_many",
    "set",
    "replace",
    "delete",
    "take",
    "index_add",
    "index_remove",
    "index_members",
    "lock",
    "unlock",
    "take_allowance",
    "publish",
    "scan",
    "ping",
)
STORE_WRITES = ("set", "replace", "delete", "index_add", "index_remove", "lock")
CACHE_RESULTS = ("hit", "miss")


def fold_method(method: str) -> str:
    """The method label: one of METHODS (an unknown or lower-case method is ``other``)."""
    return _METHOD_LABEL.get(method, "other")


def status_class(status: int) -> str:
    """The status label: ``2xx`` for 200..299 and so on (anything odd counts as 5xx)."""
    index = status // 100 - 1
    return STATUS_CLASSES[index] if 0 <= index < len(STATUS_CLASSES) else "5xx"


# --------------------------------------------------------------------------- build

BUILD_INFO = Gauge(
    "hf_gateway_build_info",
    "Always 1; the labels name the running version",
    ["version", "python"],
    multiprocess_mode="max",
    registry=REGISTRY,
)
"""Set once when a process starts. ``version`` is the gateway's, ``python`` the
interpreter's; during a rolling upgrade two versions show side by side."""
BUILD_INFO.labels(__version__, platform.python_version()).set(1)

# --------------------------------------------------------------------------- requests

REQUESTS = Counter(
    "hf_gateway_requests",
    "Answered requests by route, method and status class (2xx..5xx)",
    ["route", "method", "status"],
    registry=REGISTRY,
)
"""One per answer the gateway sends, when it is sent: proxied answers, refusals (401,
403, 429, 503) and the gateway's own pages. ``route`` is the route's ``name`` from the
config; ``method`` is folded to GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS or other;
``status`` is the class (1xx..5xx)."""
DECISIONS = Counter(
    "hf_gateway_decisions",
    "Policy decisions by route, outcome (allow, deny, unauthenticated) and reason code",
    ["route", "decision", "reason"],
    registry=REGISTRY,
)
"""One per policy decision on a proxied request, labelled with the decision's first
reason code (``gateway.policy.ReasonCode``: public, allowed, unauthenticated, denied,
no_matching_allow, rule_failed, missing_scopes, org_not_granted, org_restricted), so the sum
over reasons is the number of decisions."""
UPSTREAM_SECONDS = Histogram(
    "hf_gateway_upstream_duration_seconds",
    "Time from sending the request upstream to the end of the answer's head",
    ["route"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
"""Observed once per proxied request that reached its upstream: from sending the
request to the end of the upstream's answer head (the body streams afterwards and is not
included). Buckets from 0.5 ms to 30 s."""
OPEN_WEBSOCKETS = Gauge(
    "hf_gateway_open_websockets",
    "Websocket tunnels open now, by route",
    ["route"],
    multiprocess_mode="livesum",
    registry=REGISTRY,
)
"""Up when a websocket tunnel is registered (after the upgrade was allowed), down
when it ends for any reason (either side closed, access withdrawn, shutdown). With
workers > 1, the live workers' values are summed; a dead worker's are dropped."""

_request_children: dict[tuple[str, str, int], Counter] = {}


def count_request(route: str, method: str, status: int) -> None:
    """One answered request (the children are bound once per route, method and class)."""
    folded = fold_method(method)
    key = (route, folded, status // 100)
    child = _request_children.get(key)
    if child is None:
        child = _request_children[key] = REQUESTS.labels(route, folded, status_class(status))
    child.inc()


_decision_children: dict[tuple[str, str, str], Counter] = {}


def count_decision(route: str, decision: str, reason: str) -> None:
    """One policy decision; ``decision`` one of DECISION_OUTCOMES, ``reason`` a reason code."""
    key = (route, decision, reason)
    child = _decision_children.get(key)
    if child is None:
        child = _decision_children[key] = DECISIONS.labels(route, decision, reason)
    child.inc()


_upstream_children: dict[str, Histogram] = {}


def observe_upstream(route: str, seconds: float) -> None:
    """How long the route's upstream took to answer with its head."""
    child = _upstream_children.get(route)
    if child is None:
        child = _upstream_children[route] = UPSTREAM_SECONDS.labels(route)
    child.observe(seconds)


# --------------------------------------------------------------------------- sign-ins

SIGN_INS = Counter(
    "hf_gateway_sign_ins",
    "Sign-ins by event (started, completed, failed) and reason",
    ["event", "reason"],
    registry=REGISTRY,
)
"""``started`` when /_gateway/login sends the browser to the provider (reason ``new``,
or ``more_access`` when the login asks for extra scopes or orgs); ``completed`` (reason
``ok``) when the callback has created the session; ``failed`` when a login cannot start
(``too_large``, ``store_unavailable``, ``provider_unavailable``) or a callback is refused:
``no_state``, ``no_login`` (no binding cookie for its state: expired, another browser, or
forged), ``used``, ``access_denied`` (the user declined), the provider's
``provider_error``, ``wrong_issuer``, ``no_code``, ``token_error`` (the code was refused),
``invalid_id_token``, ``invalid_userinfo``, or ``other``. started minus completed minus
failed is the logins abandoned at the provider."""
SIGN_INS_STARTED: Mapping[str, Counter] = {
    reason: SIGN_INS.labels("started", reason) for reason in SIGN_IN_STARTED
}
SIGN_INS_COMPLETED = SIGN_INS.labels("completed", "ok")
SIGN_INS_FAILED: Mapping[str, Counter] = {
    reason: SIGN_INS.labels("failed", reason) for reason in SIGN_IN_FAILURES
}


def sign_in_failed(reason: str) -> None:
    """Count a failed sign-in; a reason outside SIGN_IN_FAILURES counts as ``other``."""
    SIGN_INS_FAILED.get(reason, SIGN_INS_FAILED["other"]).inc()


# --------------------------------------------------------------------------- sessions

REFRESHES = Counter(
    "hf_gateway_token_refreshes",
    "Provider token refreshes by result",
    ["result"],
    registry=REGISTRY,
)
"""Once per refresh attempt under the session's refresh lock: ``ok`` (new tokens
stored), ``rejected`` (the provider refused the refresh token; the session ends),
``by_other`` (another request or replica had refreshed it already), ``gone`` (the session
ended meanwhile), ``lock_timeout`` (another holder of the lock did not finish within 5 s;
503), ``unavailable`` (the token endpoint could not be reached; 503)."""
REFRESHES_BY_RESULT: Mapping[str, Counter] = {r: REFRESHES.labels(r) for r in REFRESH_RESULTS}
REVALIDATIONS = Counter(
    "hf_gateway_revalidations",
    "Session revalidations against the provider's userinfo by result",
    ["result"],
    registry=REGISTRY,
)
"""Once per revalidation (every ``session.revalidate_after``; concurrent requests of
one session share one): ``ok``, ``token_rejected`` (userinfo refused the token; the session
ends), ``refresh_failed`` (the refresh gave no tokens; see hf_gateway_token_refreshes),
``user_changed`` (userinfo names another user; ended), ``expired`` (no refresh token and the
access token expired; ended), ``gone`` (ended meanwhile), ``provider_unavailable`` and
``store_unavailable`` (the request got 503; the next one tries again)."""
REVALIDATIONS_BY_RESULT: Mapping[str, Counter] = {
    r: REVALIDATIONS.labels(r) for r in REVALIDATION_RESULTS
}

# --------------------------------------------------------------------------- bearer tokens

WHOAMI_LOOKUPS = Counter(
    "hf_gateway_whoami_lookups",
    "Bearer-token lookups at the provider (whoami-v2) by result",
    ["result"],
    registry=REGISTRY,
)
"""Once per call the gateway makes to the provider about a bearer token it has no
answer for (whoami-v2 for Hugging Face, userinfo for a generic OIDC provider): ``ok``,
``rejected`` (not a valid user token: 401), ``rate_limited`` (the provider said 429),
``unavailable`` (unreachable or 5xx)."""
WHOAMI_BY_RESULT: Mapping[str, Counter] = {r: WHOAMI_LOOKUPS.labels(r) for r in WHOAMI_RESULTS}
TOKEN_CACHE = Counter(
    "hf_gateway_token_cache_lookups",
    "Bearer-token cache lookups by result (hit, refused_hit, shared_refusal, joined, miss)",
    ["result"],
    registry=REGISTRY,
)
"""Once per bearer-token check: ``hit`` (a good answer this process holds),
``refused_hit`` (a refusal this process holds), ``joined`` (a lookup of the same token was
in flight), ``shared_refusal`` (another replica's refusal, read from the store), ``miss``
(no answer anywhere: the token goes on to the allowances and the provider). Tokens refused
by their client's allowance before the store is asked count only in
hf_gateway_bearer_throttled."""
TOKEN_CACHE_BY_RESULT: Mapping[str, Counter] = {
    r: TOKEN_CACHE.labels(r) for r in TOKEN_CACHE_RESULTS
}
BEARER_THROTTLED = Counter(
    "hf_gateway_bearer_throttled",
    "New bearer tokens not looked up because an allowance was spent (client: 429, fleet: 503)",
    ["allowance"],
    registry=REGISTRY,
)
"""Once per new bearer token refused before the provider was asked: ``client``
(that client's allowance, in this process or across the fleet: 429 for it alone) or
``fleet`` (the shared allowance of provider lookups: 503)."""
BEARER_THROTTLED_BY_ALLOWANCE: Mapping[str, Counter] = {
    a: BEARER_THROTTLED.labels(a) for a in BEARER_ALLOWANCES
}

# --------------------------------------------------------------------------- provider

PROVIDER_RATE_LIMITED = Counter(
    "hf_gateway_provider_rate_limited",
    "Answers 429 from the provider, by endpoint",
    ["endpoint"],
    registry=REGISTRY,
)
"""Once per 429 answer from the provider: ``discovery``, ``jwks``, ``token``
(code exchange or refresh), ``userinfo``, ``whoami`` (whoami-v2), ``other``."""
PROVIDER_RATE_LIMITED_BY_ENDPOINT: Mapping[str, Counter] = {
    e: PROVIDER_RATE_LIMITED.labels(e) for e in PROVIDER_ENDPOINTS
}

# --------------------------------------------------------------------------- store

STORE_SECONDS = Histogram(
    "hf_gateway_store_duration_seconds",
    "Session store operations by operation",
    ["operation"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
"""Observed once per session store call (recorded by gateway/session/redis.py; the
memory store records nothing). ``operation`` is one of get, get_many (a batched read, one
observation per batch), set, replace, delete, take,
index_add, index_remove, index_members, lock, unlock, take_allowance, publish, scan, ping.
See docs/redis.md."""
STORE_ERRORS = Counter(
    "hf_gateway_store_errors",
    "Session store operations that failed, by operation",
    ["operation"],
    registry=REGISTRY,
)
"""Once per store call that ended in an error (connection lost, timeout, refused
while reconnecting with backoff, an unreplicated write): the request that needed it got
503."""
STORE_ERRORS_BY_OPERATION: Mapping[str, Counter] = {
    op: STORE_ERRORS.labels(op) for op in STORE_OPERATIONS
}
UNREPLICATED_WRITES = Counter(
    "hf_gateway_store_unreplicated_writes",
    "Session store writes refused because fewer replicas than session.redis_wait_replicas "
    "acknowledged them within session.redis_wait_timeout_ms (or the master refused with "
    "NOREPLICAS); the caller got 503",
    ["operation"],
    registry=REGISTRY,
)
"""Once per session write (set, replace, delete, index_add, index_remove, lock)
that did not reach ``session.redis_wait_replicas`` replicas in time: the write is not
acknowledged (503), so nothing a client was told succeeded can be lost at a failover.
Stays 0 without WAIT. See docs/redis.md."""
UNREPLICATED_WRITES_BY_OPERATION: Mapping[str, Counter] = {
    op: UNREPLICATED_WRITES.labels(op) for op in STORE_WRITES
}
STORE_REPLICAS = Gauge(
    "hf_gateway_store_replicas_acknowledging",
    "Replicas that acknowledged this process's latest replicated session write (WAIT's "
    "answer); only set when session.redis_wait_replicas > 0",
    multiprocess_mode="livemin",
    registry=REGISTRY,
)
"""Set after each replicated write to the number of replicas WAIT reported. 0 also
when ``session.redis_wait_replicas`` is 0 (nothing measured). With workers > 1, the
lowest of the live workers'."""
WARM_CACHE = Counter(
    "hf_gateway_warm_cache_lookups",
    "Warm-session cache lookups by result (hit, miss)",
    ["result"],
    registry=REGISTRY,
)
"""Once per warm-session cache lookup (redis store with ``session.warm_cache``):
``hit`` (served from memory, no Redis round trip) or ``miss``. The hit ratio is
hit / (hit + miss). Added in batches: a process adds its hits at its next miss (an
increment costs more than a hit), so a process that went idle may hold back the last
second's hits until traffic resumes."""
WARM_CACHE_BY_RESULT: Mapping[str, Counter] = {r: WARM_CACHE.labels(r) for r in CACHE_RESULTS}


def count_warm_cache(hits: int, misses: int) -> None:
    """Add a batch of warm-cache lookups (gateway.session.cache.WarmCache's ``report``)."""
    if hits:
        WARM_CACHE_BY_RESULT["hit"].inc(hits)
    if misses:
        WARM_CACHE_BY_RESULT["miss"].inc(misses)


# --------------------------------------------------------------------------- configuration

RELOAD_RESULTS = ("applied", "refused")
CONFIG_RELOADS = Counter(
    "hf_gateway_config_reloads",
    "Configuration reloads (SIGHUP or a watched file changed), by result: applied (new "
    "requests use it) or refused (invalid, or a field that needs a restart changed; the "
    "previous configuration keeps serving)",
    ["result"],
    registry=REGISTRY,
)
"""Once per reload attempt in each gateway process (every worker reloads):
`applied` or `refused`. Recorded by gateway/reload.py; see docs/operations.md."""
CONFIG_RELOADS_BY_RESULT: Mapping[str, Counter] = {
    r: CONFIG_RELOADS.labels(r) for r in RELOAD_RESULTS
}
CONFIG_LAST_RELOAD_OK = Gauge(
    "hf_gateway_config_last_reload_successful",
    "1 when the latest reload attempt of this process was applied (or none was made since "
    "start), 0 when it was refused",
    multiprocess_mode="livemin",
    registry=REGISTRY,
)
"""Set to 1 at start and after an applied reload, 0 after a refused one: 0 means the files
on disk are not what is being served. With workers > 1, the lowest of the live workers'."""
CONFIG_LAST_RELOAD_OK.set(1)

# --------------------------------------------------------------------------- supervisor


class SupervisorSeries:
    """A series only the supervisor exports (``workers > 1``): plain numbers it keeps,
    yielded at each scrape by the metrics listener's registry next to the workers' files.

    Not a prometheus-client Gauge or Counter on purpose: those, created at import, would
    also be written to every worker's files and show up twice."""

    kind = ""

    def __init__(self, name: str, documentation: str, labelnames: tuple[str, ...] = ()):
        self._name = name
        self._documentation = documentation
        self._labelnames = labelnames
        self._metrics: dict[tuple[str, ...], float] = {}
        """Value by label values (named like prometheus-client's, for the reference)."""

    def describe(self) -> Iterator[Metric]:
        return self.collect()

    def collect(self) -> Iterator[Metric]:
        family: GaugeMetricFamily | CounterMetricFamily
        if self.kind == "counter":
            family = CounterMetricFamily(self._name, self._documentation, labels=self._labelnames)
        else:
            family = GaugeMetricFamily(self._name, self._documentation, labels=self._labelnames)
        for labels, value in self._metrics.items():
            family.add_metric(labels, value)
        yield family


class SupervisorGauge(SupervisorSeries):
    kind = "gauge"

    def set(self, value: float) -> None:
        self._metrics[()] = value


class SupervisorCounter(SupervisorSeries):
    kind = "counter"

    def __init__(
        self, name: str, documentation: str, labelnames: tuple[str], values: tuple[str, ...]
    ) -> None:
        super().__init__(name, documentation, labelnames)
        self._metrics = {(value,): 0.0 for value in values}

    def inc(self, value: str) -> None:
        """One more for the label value ``value`` (one of the fixed set)."""
        self._metrics[(value,)] += 1


RESTART_REASONS = ("signal", "error", "exited")
WORKERS = SupervisorGauge(
    "hf_gateway_workers",
    "Worker processes running and listening now (workers > 1; set by the supervisor)",
)
"""Set by the supervisor when a worker says it is listening and when one exits: the
workers that are running and ready. Below ``server.workers`` while a worker is being
replaced (or while they start). Exported only with ``workers > 1``: with one process there
is no supervisor (``up`` tells whether it runs)."""
WORKERS.set(0)
WORKER_RESTARTS = SupervisorCounter(
    "hf_gateway_worker_restarts",
    "Workers started again after they exited unasked, by how they ended (workers > 1)",
    ("reason",),
    RESTART_REASONS,
)
"""Once per worker the supervisor starts again after it exited without being asked to:
``signal`` (killed by a signal: SIGKILL from the kernel's out-of-memory killer, SIGSEGV),
``error`` (a non-zero exit code) or ``exited`` (exit code 0). Counted when the replacement
is scheduled (at once, or after a doubling delay when workers keep exiting soon after their
start); after 5 such quick exits in a row the supervisor gives up instead (exit 1). Exported
only with ``workers > 1``, by the supervisor."""
SUPERVISOR_SERIES: tuple[SupervisorSeries, ...] = (WORKERS, WORKER_RESTARTS)
"""What the supervisor's metrics listener exports besides the workers' files."""


def restart_reason(exit_code: int | None) -> str:
    """The ``reason`` label of a worker's exit code (negative: the signal that ended it)."""
    if exit_code is None or exit_code < 0:
        return "signal"
    return "error" if exit_code else "exited"
