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
from gateway.policy import Decision, Policy, Reason, ReasonCode, RequestFacts, evaluate
from gateway.routing import RouteTable, path_under

MEMO_ENTRIES = 65_536
"""Remembered decisions per process (then forgotten all at once)."""


@dataclass(frozen=True, slots=True)
class Access:
    route: RouteConfig
    decision: Decision
    public_path: bool = False


class AccessControl:
    """Routes and policies of one configuration, ready to judge requests."""

    def __init__(self, config: GatewayConfig) -> None:
        self._table: RouteTable[RouteConfig] = RouteTable(config.routes)
        self._policies: dict[str, Policy] = {r.name: config.policy_for(r) for r in config.routes}
        self._memo: dict[tuple[str, str, str, str, str], tuple[Identity | None, Access]] = {}

    def route_for(self, host: str, path: str) -> RouteConfig | None:
        """The route for a normalised host and match path, or None."""
        return self._table.match(host, path)

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
    ) -> Access:
        """Judge a request already matched to ``route``; ``path`` is the match path."""
        for index, public in enumerate(route.public_paths):
            if path_under(path, public):
                reason = Reason(ReasonCode.PUBLIC, f"public_paths[{index}]", f"{public} is public")
                return Access(route, Decision(True, (reason,)), public_path=True)
        facts = RequestFacts(method=method.upper(), path=path, host=host)
        return Access(route, evaluate(self.policy(route), identity, facts, now))

    def decide_for(
        self,
        credential: str,
        route: RouteConfig,
        path: str,
        method: str,
        identity: Identity | None,
        now: datetime,
        host: str = "",
    ) -> Access:
        """``decide``, remembered per credential (session key or token hash, "" for
        anonymous) and request facts while the identity is the same object.

        A decision is a pure function of the policy, the identity and the request facts
        (no criterion reads the time, see ``evaluate``); a revalidated or re-read session
        brings a new Identity object, and with it a fresh decision.
        """
        key = (credential, route.name, path, method, host)
        entry = self._memo.get(key)
        if entry is not None and entry[0] is identity:
            return entry[1]
        access = self.decide(route, path, method, identity, now, host)
        if len(self._memo) >= MEMO_ENTRIES:
            self._memo.clear()
        self._memo[key] = (identity, access)
        return access
