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
