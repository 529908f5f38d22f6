"""Access control: host + normalised path + identity -> (route, decision).

The one place that combines routing, public paths and policy evaluation, so the web
pipeline, the forward-auth endpoint and ``hf-gateway explain`` can never disagree.
Pure: no I/O, and the time is passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from gateway.config import GatewayConfig, RouteConfig
from gateway.identity import Identity
from gateway.policy import Decision, Policy, Reason, ReasonCode, RequestFacts, Rule, evaluate
from gateway.routing import (
    NormalPath,
    Origin,
    OriginPolicy,
    RouteTable,
    parse_origin_pattern,
    path_under,
)

MEMO_ENTRIES = 16_384
"""Remembered routings and decisions per process (then forgotten all at once). A decision
keeps its Identity alive (about 2.7 KiB with three orgs) after the warm cache let it go:
16,384 bound the decisions to about 50 MiB at worst (docs/architecture.md, memory)."""
MEMO_KEY_CHARS = 512
"""Requests whose host, path and method together are longer are routed and judged afresh
each time, not remembered: the keys are the client's strings, and 65,536 of 16 KiB hosts
would hold a gigabyte (docs/architecture.md, memory)."""


@dataclass(frozen=True, slots=True)
class Access:
    route: RouteConfig
    decision: Decision
    public_path: bool = False


@dataclass(frozen=True, slots=True)
class Reading:
    """One way an upstream may read the request path: which route and public paths it
    falls under then."""

    route: RouteConfig
    path: str
    fold: bool
    """Compared ignoring letter case."""


@dataclass(frozen=True, slots=True)
class Routed:
    """A request's route, and every reading of its path that a decision must survive.

    The gateway routes on the normalised path with ``;params`` removed, in the letter
    case it came in. An upstream may read it otherwise: with the parameters as part of
    the segment (``/public;x/secret`` is not under ``/public``), or ignoring case (Express
    serves ``/ex/STAFF`` from its ``/ex/staff`` handler). A request is allowed only if
    every such reading that lands on a route is allowed: the stricter reading decides.
    """

    route: RouteConfig
    forward: str
    readings: tuple[Reading, ...]


class AccessControl:
    """Routes and policies of one configuration, ready to judge requests."""

    def __init__(self, config: GatewayConfig) -> None:
        self._table: RouteTable[RouteConfig] = RouteTable(config.routes)
        self._policies: dict[str, Policy] = {r.name: config.policy_for(r) for r in config.routes}
        # Routes whose policy reads the client address: only their memo entries are keyed by
        # it, so a public page seen from many addresses stays one entry.
        self._reads_client_ip: frozenset[str] = frozenset(
            name for name, policy in self._policies.items() if _reads_client_ip(policy)
        )
        self._memo: dict[tuple[str, str, str, str, str, str], tuple[Identity | None, Access]] = {}
        self._routed: dict[tuple[str, str], Routed | None] = {}
        self._origins = OriginPolicy(
            config.server.public_url,
            [r.host for r in config.routes if r.host] + list(config.server.allowed_redirect_hosts),
        )
        self._route_origins: dict[str, tuple[Origin, ...]] = {
            r.name: tuple(o for o in map(parse_origin_pattern, r.allowed_origins) if o)
            for r in config.routes
        }

    def same_site(self, origin: str | None, route: RouteConfig | None = None) -> bool:
        """Whether ``origin`` is one of the gateway's own (or one ``route`` allows)."""
        extra = self._route_origins[route.name] if route is not None else ()
        return self._origins.allows(origin, extra)

    def route_for(self, host: str, path: str) -> RouteConfig | None:
        """The route for a normalised host and match path, or None."""
        return self._table.match(host, path)

    def routed(self, host: str, path: NormalPath) -> Routed | None:
        """The route for a request and the readings to judge it by; None: no route."""
        key = (host, path.forward)
        if key in self._routed:
            return self._routed[key]
        found = self._readings(host, path)
        if len(host) + len(path.forward) <= MEMO_KEY_CHARS:
            if len(self._routed) >= MEMO_ENTRIES:
                self._routed.clear()
            self._routed[key] = found
        return found

    def _readings(self, host: str, path: NormalPath) -> Routed | None:
        route = self._table.match(host, path.match)
        if route is None:
            return None
        readings = [Reading(route, path.match, route.case_insensitive)]
        texts = [path.match] + ([path.forward] if ";" in path.forward else [])
        for text in texts:
            for fold in (False, True) if text != text.lower() else (False,):
                other = self._table.match(host, text, fold=fold)
                if other is None:
                    continue  # no route serves that reading: it cannot open anything
                reading = Reading(other, text, fold or other.case_insensitive)
                if reading not in readings:
                    readings.append(reading)
        return Routed(route, path.forward, tuple(readings))

    def policy(self, route: RouteConfig) -> Policy:
        return self._policies[route.name]

    def decide(
        self,
        route: RouteConfig,
        path: str,
        method: str,
        identity: Identity | None,
        now: datetime,
        host: str = "",
        *,
        fold: bool = False,
        client_ip: str = "",
    ) -> Access:
        """Judge one reading of a request matched to ``route``; ``path`` is its match path,
        ``client_ip`` the client's address (for ``source_ip``; "" unknown: no match)."""
        compared = path.lower() if fold else path
        for index, public in enumerate(route.public_paths):
            if path_under(compared, public.lower() if fold else public):
                reason = Reason(ReasonCode.PUBLIC, f"public_paths[{index}]", f"{public} is public")
                return Access(route, Decision(True, (reason,)), public_path=True)
        facts = RequestFacts(
            method=method.upper(), path=path, host=host, client_ip=client_ip, fold=fold
        )
        return Access(route, evaluate(self.policy(route), identity, facts, now))

    def judge(
        self,
        routed: Routed,
        method: str,
        identity: Identity | None,
        now: datetime,
        host: str = "",
        client_ip: str = "",
    ) -> Access:
        """The decision every reading agrees to: the first refusal, else the route's own."""
        first: Access | None = None
        for reading in routed.readings:
            access = self.decide(
                reading.route,
                reading.path,
                method,
                identity,
                now,
                host,
                fold=reading.fold,
                client_ip=client_ip,
            )
            if not access.decision.allowed:
                return Access(routed.route, access.decision)
            first = first or access
        assert first is not None  # a Routed always has its own reading
        return first

    def decide_for(
        self,
        credential: str,
        routed: Routed,
        method: str,
        identity: Identity | None,
        now: datetime,
        host: str = "",
        client_ip: str = "",
    ) -> Access:
        """``judge``, remembered per credential (session key or token hash, "" for
        anonymous) and request facts (route, path, method, host, client address) while the
        identity is the same object.

        A decision is a pure function of the policy, the identity and the request facts
        (no criterion reads the time, see ``evaluate``); a revalidated or re-read session
        brings a new Identity object, and with it a fresh decision.
        """
        if routed.route.name not in self._reads_client_ip:
            client_ip = ""  # no rule reads it: the decision is the same for every address
        key = (credential, routed.route.name, routed.forward, method, host, client_ip)
        entry = self._memo.get(key)
        if entry is not None and entry[0] is identity:
            return entry[1]
        access = self.judge(routed, method, identity, now, host, client_ip)
        if len(host) + len(routed.forward) + len(method) + len(client_ip) <= MEMO_KEY_CHARS:
            if len(self._memo) >= MEMO_ENTRIES:
                self._memo.clear()
            self._memo[key] = (identity, access)
        return access


def _reads_client_ip(policy: Policy) -> bool:
    """Whether any rule of ``policy`` (combinators included) has a ``source_ip`` criterion."""

    def reads(rule: Rule) -> bool:
        nested = (*(rule.any_ or ()), *(rule.all_ or ()), *((rule.not_,) if rule.not_ else ()))
        return rule.source_ip is not None or any(reads(r) for r in nested)

    return any(reads(rule) for rule in (*policy.allow, *policy.deny))
