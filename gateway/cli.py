"""The ``hf-gateway`` command line.

Exit codes: 0 success (and "allow" for explain), 1 "deny" for explain, 2 invalid config,
bad arguments or no matching route. No verb ever prints a traceback for a user mistake.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TextIO
from urllib.parse import urlsplit

from gateway import __version__
from gateway.access import AccessControl
from gateway.assertion import load_signing_keys
from gateway.config import GatewayConfig, config_json_schema, load_config
from gateway.errors import ConfigError, PathError, StoreError
from gateway.identity import ROLE_ORDER, Identity, Org
from gateway.routing import normalize_host, normalize_path

if TYPE_CHECKING:
    from gateway.admin import SessionSummary

EXIT_OK = 0
EXIT_DENY = 1
EXIT_USAGE = 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        code: int = args.handler(args)
    except KeyboardInterrupt:
        return 130
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hf-gateway", description="Sign in with Hugging Face in front of any web tool."
    )
    parser.add_argument("--version", action="version", version=f"hf-gateway {__version__}")
    verbs = parser.add_subparsers(title="commands", metavar="COMMAND")

    run = verbs.add_parser("run", help="start the gateway")
    run.add_argument(
        "-c", "--config", default=os.environ.get("HF_GATEWAY_CONFIG"), help="path to gateway.yaml"
    )
    run.set_defaults(handler=_run)

    demo = verbs.add_parser(
        "demo", help="fake Hugging Face + sample upstream + gateway on 127.0.0.1, memory store"
    )
    demo.add_argument("--port", type=int, default=8080, help="gateway port (default 8080)")
    demo.set_defaults(handler=_demo)

    check = verbs.add_parser("check-config", help="validate a configuration file")
    check.add_argument(
        "file", nargs="?", default=_config_env(), help="path to gateway.yaml (or HF_GATEWAY_CONFIG)"
    )
    check.set_defaults(handler=_check_config, usage_error=check.error)

    health = verbs.add_parser(
        "healthcheck", help="exit 0 when the gateway at server.listen answers (for HEALTHCHECK)"
    )
    health.add_argument("-c", "--config", default=_config_env(), help="path to gateway.yaml")
    health.add_argument(
        "--ready", action="store_true", help="ask /_gateway/readyz instead of /_gateway/healthz"
    )
    health.add_argument("--timeout", type=float, default=2.0, help="seconds (default 2)")
    health.set_defaults(handler=_healthcheck)

    explain = verbs.add_parser(
        "explain", help="which route matches a URL and why its policy allows or denies"
    )
    explain.add_argument(
        "-c", "--config", default=_config_env(), help="path to gateway.yaml (or HF_GATEWAY_CONFIG)"
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
    explain.add_argument("--json", action="store_true", help="machine-readable output")
    explain.set_defaults(handler=_explain, usage_error=explain.error)

    sessions = verbs.add_parser("sessions", help="list or revoke sessions in the shared store")
    session_verbs = sessions.add_subparsers(title="actions", metavar="ACTION")
    listing = session_verbs.add_parser("list", help="live sessions, newest first")
    listing.add_argument("-c", "--config", default=os.environ.get("HF_GATEWAY_CONFIG"))
    listing.add_argument("--user", help="only this username (or sub)")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(handler=_sessions_list)
    revoke = session_verbs.add_parser("revoke", help="end sessions everywhere at once")
    revoke.add_argument("-c", "--config", default=os.environ.get("HF_GATEWAY_CONFIG"))
    target = revoke.add_mutually_exclusive_group(required=True)
    target.add_argument("--user", help="every session of this username (or sub)")
    target.add_argument("--id", dest="session_id", help="one session, by the id list shows")
    revoke.set_defaults(handler=_sessions_revoke)

    schema = verbs.add_parser("schema", help="print the JSON Schema of the configuration")
    schema.set_defaults(handler=_schema)

    login = verbs.add_parser(
        "login", help="get a Hugging Face token for a gateway (device code) and save it"
    )
    login.add_argument("url", help="the gateway's public URL, e.g. https://tools.example.com")
    login.add_argument(
        "--client-id",
        default=os.environ.get("HF_GATEWAY_CLIENT_ID"),
        help="public HF OAuth app allowing the device flow (or HF_GATEWAY_CLIENT_ID)",
    )
    login.add_argument(
        "--issuer",
        default=os.environ.get("HF_GATEWAY_ISSUER"),
        help="provider URL (default: the gateway's resource metadata, else Hugging Face)",
    )
    login.add_argument(
        "--scope", action="append", default=None, metavar="S", help="scope (repeatable)"
    )
    login.add_argument(
        "--print-token",
        action="store_true",
        help="print the token on stdout (the saved one while it lasts), for scripts",
    )
    login.add_argument("--token-file", help="default: HF_GATEWAY_TOKEN_FILE or XDG config")
    login.set_defaults(handler=_login)
    return parser


def _login(args: argparse.Namespace) -> int:
    from pathlib import Path

    from gateway.login_command import LoginRequest, login
    from gateway.saved_tokens import token_file

    request = LoginRequest(
        url=args.url,
        client_id=args.client_id,
        issuer=args.issuer,
        scopes=args.scope,
        token_file=Path(args.token_file) if args.token_file else token_file(),
        print_token=args.print_token,
    )
    return asyncio.run(login(request, sys.stdout, sys.stderr))


def _config_env() -> str | None:
    """HF_GATEWAY_CONFIG, the default of every verb that takes a configuration file."""
    return os.environ.get("HF_GATEWAY_CONFIG") or None


def _load(path: str, err: TextIO) -> GatewayConfig | None:
    try:
        return load_config(path)
    except ConfigError as exc:
        count = len(exc.problems)
        print(
            f"{path}: invalid configuration ({count} problem{'' if count == 1 else 's'})",
            file=err,
        )
        for problem in exc.problems:
            print(f"  {problem}", file=err)
        return None


def _run(args: argparse.Namespace) -> int:
    config = _required_config(args, "run")
    if config is None or not _signing_key_usable(config, args.config):
        return EXIT_USAGE
    from gateway.logs import configure_logging
    from gateway.serve import run

    configure_logging(config.logging)
    return run(config, args.config)


def _demo(args: argparse.Namespace) -> int:
    from gateway.devtools.demo import main as demo_main
    from gateway.logs import configure_logging

    configure_logging(fmt="text")
    return demo_main(args.port)


def _signing_key_usable(config: GatewayConfig, path: str) -> bool:
    """The assertion key file parses (the config check only knows that it exists)."""
    key_file = config.identity.assertion.signing_key_file
    if key_file is None:
        return True
    try:
        load_signing_keys(key_file)
    except (OSError, ValueError) as exc:
        print(f"{path}: invalid configuration (1 problem)", file=sys.stderr)
        print(f"  identity.assertion.signing_key_file: {exc}", file=sys.stderr)
        return False
    return True


def _required_config(args: argparse.Namespace, verb: str) -> GatewayConfig | None:
    """The configuration named by -c or HF_GATEWAY_CONFIG; None (with a message) if not."""
    if not args.config:
        print(f"{verb}: give -c FILE or set HF_GATEWAY_CONFIG", file=sys.stderr)
        return None
    return _load(args.config, sys.stderr)


def _failed(verb: str, exc: Exception) -> int:
    print(f"{verb}: {exc}", file=sys.stderr)
    return EXIT_USAGE


def _sessions_list(args: argparse.Namespace) -> int:
    from gateway.admin import AdminError, list_sessions

    config = _required_config(args, "sessions")
    if config is None:
        return EXIT_USAGE
    try:
        found = asyncio.run(list_sessions(config, args.user))
    except (AdminError, StoreError) as exc:
        return _failed("sessions", exc)
    if args.json:
        print(json.dumps([_summary_json(s) for s in found], indent=2))
        return EXIT_OK
    print(f"{'ID':16}  {'USER':20}  {'CREATED':20}  {'LAST SEEN':20}  ORGS")
    for summary in found:
        print(
            f"{summary.id:16}  {summary.username[:20]:20}  {_when(summary.created_at):20}  "
            f"{_when(summary.last_seen):20}  {','.join(summary.orgs)}"
        )
    print(f"{len(found)} session{'' if len(found) == 1 else 's'}")
    return EXIT_OK


def _sessions_revoke(args: argparse.Namespace) -> int:
    from gateway.admin import AdminError, revoke_sessions

    config = _required_config(args, "sessions")
    if config is None:
        return EXIT_USAGE
    try:
        count = asyncio.run(revoke_sessions(config, user=args.user, session_id=args.session_id))
    except (AdminError, StoreError) as exc:
        return _failed("sessions", exc)
    print(f"revoked {count} session{'' if count == 1 else 's'}")
    return EXIT_OK


def _summary_json(summary: SessionSummary) -> dict[str, object]:
    return {
        "id": summary.id,
        "username": summary.username,
        "sub": summary.sub,
        "orgs": list(summary.orgs),
        "created_at": int(summary.created_at),
        "last_seen": int(summary.last_seen),
        "expires_at": int(summary.expires_at),
    }


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _check_config(args: argparse.Namespace) -> int:
    if not args.file:  # argparse's own usage error (exit 2), as when FILE was required
        args.usage_error("give FILE or set HF_GATEWAY_CONFIG")
    config = _load(args.file, sys.stderr)
    if config is None or not _signing_key_usable(config, args.file):
        return EXIT_USAGE
    print(
        f"{args.file}: ok ({len(config.routes)} routes, "
        f"{len(config.policies)} policies, store {config.session.store})"
    )
    return EXIT_OK


def _schema(args: argparse.Namespace) -> int:
    del args
    json.dump(config_json_schema(), sys.stdout, indent=2, sort_keys=True)
    print()
    return EXIT_OK


def _healthcheck(args: argparse.Namespace) -> int:
    """Exit 0 healthy, 1 anything else: Docker reserves 2, so a bad config is 1 here too."""
    from gateway.healthcheck import (
        HEALTH_PATH,
        READY_PATH,
        HealthcheckError,
        listen_address,
        probe,
        probe_url,
    )

    if not args.config:
        print("healthcheck: give -c FILE or set HF_GATEWAY_CONFIG", file=sys.stderr)
        return EXIT_DENY
    try:
        listen = listen_address(args.config, os.environ)
    except HealthcheckError as exc:
        print(f"healthcheck: {exc}", file=sys.stderr)
        return EXIT_DENY
    url = probe_url(listen, READY_PATH if args.ready else HEALTH_PATH)
    healthy, detail = probe(url, args.timeout)
    print(f"healthcheck: {detail}", file=sys.stdout if healthy else sys.stderr)
    return EXIT_OK if healthy else EXIT_DENY


def _explain(args: argparse.Namespace) -> int:
    if not args.config:
        args.usage_error("give -c FILE or set HF_GATEWAY_CONFIG")
    config = _load(args.config, sys.stderr)
    if config is None:
        return EXIT_USAGE
    try:
        identity = _identity_from_args(args, config)
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
    access = control.judge(routed, args.method, identity, datetime.now(UTC), host)
    reasons = [_reason(r.code.value, r.detail, r.rule, r.values) for r in access.decision.reasons]
    _emit(route.name, route.upstream, access.decision.allowed, reasons, args)
    return EXIT_OK if access.decision.allowed else EXIT_DENY


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
