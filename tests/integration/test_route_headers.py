"""A route's set_headers / remove_headers and the {org_roles} identity field, over real
HTTP to the echo upstream (docs/configuration.md §9). The requests are written raw, so a
client's forged copy of a set header arrives in every spelling an attacker would try."""

from __future__ import annotations

from typing import Any

from tests.integration.conftest import StartGateway
from tests.integration.test_header_spoofing import (
    canonical,
    get,
    raw_exchange,
    signed_in_cookie,
    upstream_headers,
)


def _routes(upstream: str) -> dict[str, Any]:
    return {
        "identity": {"headers": {"X-Forwarded-User": "{username}", "X-Org-Roles": "{org_roles}"}},
        "routes": [
            {
                "name": "edited",
                "path": "/api/echo/edited",
                "upstream": upstream,
                "policy": "authenticated",
                "set_headers": {"X-Team": "ml-platform", "Authorization": "Bearer upstream-key"},
                "remove_headers": ["X-Debug", "X-Trace-*"],
                "public_paths": ["/api/echo/edited/public"],
            },
            {"name": "plain", "path": "/", "upstream": upstream, "policy": "authenticated"},
        ],
    }


def _values(pairs: list[tuple[str, str]], name: str) -> list[str]:
    return [v for k, v in pairs if canonical(k) == canonical(name)]


FORGED = (
    "X-Team: evil\r\n"
    "x_team: evil\r\n"
    "X-TEAM: evil\r\n"
    "Authorization: Bearer client-token\r\n"
    "X-Debug: 1\r\n"
    "X-Trace-Id: abc\r\n"
    "X-Kept: yes\r\n"
)


async def test_set_headers_replace_every_forged_copy_and_removed_ones_never_arrive(
    start_gateway: StartGateway, upstream: str
) -> None:
    gateway = await start_gateway(_routes(upstream))
    cookie = await signed_in_cookie(gateway)
    seen = upstream_headers(
        await raw_exchange(gateway, get(gateway, "/api/echo/edited/x", FORGED, cookie))
    )
    assert _values(seen, "X-Team") == ["ml-platform"]
    assert _values(seen, "Authorization") == ["Bearer upstream-key"]
    assert _values(seen, "X-Debug") == []
    assert _values(seen, "X-Trace-Id") == []
    assert _values(seen, "X-Kept") == ["yes"]
    assert _values(seen, "X-Forwarded-User") == ["alice"]
    assert _values(seen, "X-Org-Roles") == ["acme:admin,hf-tools:write"]


async def test_a_route_without_edits_forwards_the_clients_headers(
    start_gateway: StartGateway, upstream: str
) -> None:
    """The twin: on the route without set/remove, the same client headers arrive as sent
    (so the test above fails if the edits stop being applied)."""
    gateway = await start_gateway(_routes(upstream))
    cookie = await signed_in_cookie(gateway)
    seen = upstream_headers(
        await raw_exchange(gateway, get(gateway, "/api/echo/other", FORGED, cookie))
    )
    assert sorted(_values(seen, "X-Team")) == ["evil", "evil", "evil"]
    assert _values(seen, "X-Debug") == ["1"]
    assert _values(seen, "X-Trace-Id") == ["abc"]
    assert _values(seen, "X-Org-Roles") == ["acme:admin,hf-tools:write"]


async def test_set_headers_apply_on_public_paths_too_and_org_roles_is_empty_there(
    start_gateway: StartGateway, upstream: str
) -> None:
    gateway = await start_gateway(_routes(upstream))
    seen = upstream_headers(
        await raw_exchange(gateway, get(gateway, "/api/echo/edited/public", FORGED))
    )
    assert _values(seen, "X-Team") == ["ml-platform"]
    assert _values(seen, "X-Debug") == []
    assert _values(seen, "X-Org-Roles") == [""]
