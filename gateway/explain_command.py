"""``hf-gateway explain``: which route serves a URL and why its policy allows or denies.

Works offline: it reads the configuration and judges with the same AccessControl the
running gateway uses, for an identity described on the command line.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import sys
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from gateway.access import AccessControl
from gateway.config import GatewayConfig
from gateway.config_report import load_or_report
from gateway.errors import PathError
from gateway.identity import ROLE_ORDER, Identity, Org
from gateway.routing import normalize_host, normalize_path

EXIT_OK = 0
EXIT_DENY = 1
EXIT_USAGE = 2


def add_explain_parser(verbs: Any, config_default: str | None) -> None:
    """Add the ``explain`` verb to the CLI's subparsers."""
    explain = verbs.add_parser(
        "explain", help="which route matches a URL and why its policy allows or denies"
    )
    explain.add_argument(
        "-c", "--config", default=config_default, help="path to gateway.yaml (or HF_GATEWAY_CONFIG)"
    )
    explain.add_argument("url", help="absolute URL or path, e.g. https://tools.example.com/admin")
    explain.add_argument("--user", help="HF username (omit for an anonymous request)")
    explain.add_argument("--user-id", help="HF user id (sub); defaults to a made-up id")
    explain.add_argument(
        "--org",
        action="append",
        default=[],
        metavar="SLUG[:ROLE]",
        help="org membership; without :ROLE the org is listed but not granted to the app",
    )
    explain.add_argument(
        "--org-id", action="append", default=[], metavar="ID[:ROLE]", help="org membership by id"
    )
    explain.add_argument(
        "--scope",
        action="append",
        default=None,
        metavar="S",
        help="granted OAuth scope (repeatable; default: the provider's configured scopes)",
    )
    explain.add_argument("--email", help="the user's (verified) email address")
    explain.add_argument("--pro", action="store_true", help="the user has HF Pro")
    explain.add_argument("--token-role", help="HF access token role (read, write, fineGrained)")
    explain.add_argument("--method", default="GET", help="HTTP method (default GET)")
    explain.add_argument(
        "--source-ip",
        default="",
        metavar="ADDR",
        help="the client's address, for source_ip rules (default: unknown, which no "
        "source_ip rule admits)",
    )
    explain.add_argument(
        "--preflight",
        action="store_true",
        help="a CORS preflight: OPTIONS with Origin and Access-Control-Request-Method",
    )
    explain.add_argument("--json", action="store_true", help="machine-readable output")
    explain.set_defaults(handler=run_explain, usage_error=explain.error)


def run_explain(args: argparse.Namespace) -> int:
    if not args.config:
        args.usage_error("give -c FILE or set HF_GATEWAY_CONFIG")
    config = load_or_report(args.config, sys.stderr)
    if config is None:
        return EXIT_USAGE
    try:
        identity = _identity_from_args(args, config)
        source_ip = _source_ip(args.source_ip)
    except ValueError as exc:
        print(f"explain: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        parts = urlsplit(args.url if "://" in args.url else "http://_" + args.url)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError as exc:  # "http://[::1/x": an argument mistake, not a traceback
        print(f"explain: invalid URL {args.url!r}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    # netloc without "user@": a Host header never carries userinfo.
    netloc = parts.netloc.rpartition("@")[2]
    host = "" if parts.hostname in (None, "_") else normalize_host(netloc)
    host = host or urlsplit(config.server.public_url).hostname or ""
    try:
        path = normalize_path(parts.path or "/")
    except PathError as exc:
        _emit(None, None, False, [_reason("bad_path", f"{exc}: the gateway answers 400")], args)
        return EXIT_USAGE
    control = AccessControl(config)
    routed = control.routed(host, path)
    if routed is None:
        detail = f"no route serves {host}{path.match}: the gateway answers 404"
        _emit(None, None, False, [_reason("no_route", detail)], args)
        return EXIT_USAGE
    route = routed.route
    method = "OPTIONS" if args.preflight else args.method.upper()
    if args.preflight and route.cors_preflight:
        reasons = [_reason("public", PREFLIGHT, "cors_preflight")]
        _emit(route.name, route.upstream, True, reasons, args)
        return EXIT_OK
    access = control.judge(routed, method, identity, datetime.now(UTC), host, source_ip)
    reasons = [_reason(r.code.value, r.detail, r.rule, r.values) for r in access.decision.reasons]
    _emit(route.name, route.upstream, access.decision.allowed, reasons, args)
    return EXIT_OK if access.decision.allowed else EXIT_DENY


PREFLIGHT = "a CORS preflight, let through without sign-in (cors_preflight)"
"""As gateway/web/gate.py words it (not imported: explain needs no web stack)."""


def _source_ip(text: str) -> str:
    """The address as the gateway compares it; ValueError for a mistake."""
    if not text:
        return ""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise ValueError(f"--source-ip {text!r} is not an IP address") from None


def _reason(
    code: str, detail: str, rule: str = "", values: tuple[str, ...] = ()
) -> dict[str, object]:
    return {"code": code, "rule": rule, "detail": detail, "values": list(values)}


def _emit(
    route: str | None,
    upstream: str | None,
    allowed: bool,
    reasons: list[dict[str, object]],
    args: argparse.Namespace,
) -> None:
    """Print a verdict: ``route:``, ``decision:`` and ``reason: CODE RULE`` lines, or JSON."""
    decision = "allow" if allowed else "deny"
    if args.json:
        payload = {"route": route, "upstream": upstream, "decision": decision, "reasons": reasons}
        print(json.dumps(payload, indent=2))
        return
    print(f"route: {route or '(none)'}")
    print(f"decision: {decision}")
    for reason in reasons:
        print(f"reason: {reason['code']} {reason['rule']}".rstrip())
        if reason["detail"]:
            print(f"  {reason['detail']}")


def _identity_from_args(args: argparse.Namespace, config: GatewayConfig) -> Identity | None:
    if not args.user:
        if args.org or args.org_id or args.email or args.pro or args.token_role or args.scope:
            raise ValueError(
                "--org, --org-id, --email, --pro, --token-role and --scope need --user"
            )
        return None
    orgs = [_org(spec, by_id=False) for spec in args.org]
    orgs += [_org(spec, by_id=True) for spec in args.org_id]
    scopes = args.scope if args.scope is not None else config.provider.scopes
    return Identity(
        sub=args.user_id or f"explain-{args.user}",
        username=args.user,
        email=args.email,
        email_verified=bool(args.email),
        is_pro=args.pro,
        orgs=tuple(orgs),
        scopes=frozenset(scopes),
        token_role=args.token_role,
    )


def _org(spec: str, *, by_id: bool) -> Org:
    name, _, role = spec.partition(":")
    if not name:
        raise ValueError(f"empty org in {spec!r}")
    if role and role not in ROLE_ORDER:
        raise ValueError(f"unknown role {role!r} in {spec!r}; use one of {', '.join(ROLE_ORDER)}")
    if by_id:
        return Org(sub=name, slug="", role=role or None)
    return Org(sub=f"explain-{name}", slug=name, role=role or None)
