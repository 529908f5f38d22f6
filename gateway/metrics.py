"""Every Prometheus series the gateway exports, defined once (prometheus-client).

Modules record into these series directly. They are process-global by design: with
``workers > 1`` each worker writes its own files under ``PROMETHEUS_MULTIPROC_DIR`` (set
by the supervisor before a worker imports this module) and the metrics listener adds them
up. Label values are always bounded: route names come from the config, reasons and
results from fixed code sets, methods are folded to a known few.
"""

from __future__ import annotations

import platform

from prometheus_client import Counter, Gauge, Histogram

from gateway import __version__

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

BUILD_INFO = Gauge(
    "hf_gateway_build_info",
    "Always 1; the labels name the running version",
    ["version", "python"],
    multiprocess_mode="max",
)
BUILD_INFO.labels(__version__, platform.python_version()).set(1)

REQUESTS = Counter(
    "hf_gateway_requests",
    "Answered requests by route, method and status class (2xx..5xx)",
    ["route", "method", "status"],
)
DECISIONS = Counter(
    "hf_gateway_decisions",
    "Policy decisions by route, outcome (allow, deny, unauthenticated) and reason code",
    ["route", "decision", "reason"],
)
UPSTREAM_SECONDS = Histogram(
    "hf_gateway_upstream_duration_seconds",
    "Time from sending the request upstream to the end of the answer's head",
    ["route"],
    buckets=LATENCY_BUCKETS,
)
SIGN_INS = Counter(
    "hf_gateway_sign_ins",
    "Sign-ins by event (started, completed, failed) and reason",
    ["event", "reason"],
)
REFRESHES = Counter(
    "hf_gateway_token_refreshes",
    "Provider token refreshes by result",
    ["result"],
)
REVALIDATIONS = Counter(
    "hf_gateway_revalidations",
    "Session revalidations against the provider's userinfo by result",
    ["result"],
)
WHOAMI_LOOKUPS = Counter(
    "hf_gateway_whoami_lookups",
    "Bearer-token lookups at the provider (whoami-v2) by result",
    ["result"],
)
TOKEN_CACHE = Counter(
    "hf_gateway_token_cache_lookups",
    "Bearer-token cache lookups by result (hit, miss)",
    ["result"],
)
PROVIDER_RATE_LIMITED = Counter(
    "hf_gateway_provider_rate_limited",
    "Answers 429 from the provider, by endpoint",
    ["endpoint"],
)
STORE_SECONDS = Histogram(
    "hf_gateway_store_duration_seconds",
    "Session store operations by operation",
    ["operation"],
    buckets=LATENCY_BUCKETS,
)
STORE_ERRORS = Counter(
    "hf_gateway_store_errors",
    "Session store operations that failed, by operation",
    ["operation"],
)
WARM_CACHE = Counter(
    "hf_gateway_warm_cache_lookups",
    "Warm-session cache lookups by result (hit, miss)",
    ["result"],
)
OPEN_WEBSOCKETS = Gauge(
    "hf_gateway_open_websockets",
    "Websocket tunnels open now, by route",
    ["route"],
    multiprocess_mode="livesum",
)
