"""The ``hf-gateway`` command line.

Exit codes: 0 success (and "allow" for explain), 1 "deny" for explain, nothing matched for
``sessions revoke``, a failed ``check-config --connect`` and an unhealthy ``healthcheck``;
2 invalid config, bad arguments or no matching route. No verb ever prints a traceback for a
user mistake.

Every verb that reads a configuration takes ``-c/--config FILE`` and defaults to
``HF_GATEWAY_CONFIG``; every verb answers ``--version``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import difflib
import json
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from gateway import __version__
from gateway.assertion import load_signing_keys
from gateway.config import GatewayConfig, config_json_schema
from gateway.config_report import load_or_report
from gateway.errors import StoreError
from gateway.explain_command import add_explain_parser

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
        sys.stdout.flush()
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `hf-gateway schema | head`: the reader left, which is no error of the user's. Point
        # stdout at /dev/null so the interpreter's final flush cannot raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, as a shell reports a command killed by it
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hf-gateway", description="Sign in with Hugging Face in front of any web tool."
    )
    _add_version(parser)
    verbs = parser.add_subparsers(title="commands", metavar="COMMAND")

    run = verbs.add_parser("run", help="start the gateway")
    _add_config(run)
    run.set_defaults(handler=_run, usage_error=run.error)

    demo = verbs.add_parser(
        "demo", help="fake Hugging Face + sample upstream + gateway on 127.0.0.1, memory store"
    )
    demo.add_argument(
        "--port", type=int, default=8080, help="gateway port (default 8080, else a free one)"
    )
    demo.set_defaults(handler=_demo)

    check = verbs.add_parser("check-config", help="validate a configuration file")
    check.add_argument("file", nargs="?", help="path to gateway.yaml (same as -c FILE)")
    check.add_argument(
        "-c", "--config", metavar="FILE", help="path to gateway.yaml (default: HF_GATEWAY_CONFIG)"
    )
    check.add_argument(
        "--connect",
        action="store_true",
        help="also try the session store's Redis and the provider's discovery (exit 1 on FAIL)",
    )
    check.set_defaults(handler=_check_config, usage_error=check.error)

    health = verbs.add_parser(
        "healthcheck", help="exit 0 when the gateway at server.listen answers (for HEALTHCHECK)"
    )
    _add_config(health)
    health.add_argument(
        "--ready", action="store_true", help="ask /_gateway/readyz instead of /_gateway/healthz"
    )
    health.add_argument("--timeout", type=float, default=2.0, help="seconds (default 2)")
    health.set_defaults(handler=_healthcheck)

    add_explain_parser(verbs, _config_env())
    explain = verbs.choices["explain"]
    explain.set_defaults(handler=_explain)

    sessions = verbs.add_parser("sessions", help="list or revoke sessions in the shared store")
    session_verbs = sessions.add_subparsers(title="actions", metavar="ACTION")
    listing = session_verbs.add_parser("list", help="live sessions, newest first")
    _add_config(listing)
    listing.add_argument("--user", help="only this username (or sub)")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(handler=_sessions_list)
    revoke = session_verbs.add_parser(
        "revoke", help="end sessions everywhere at once (exit 1 when none matched)"
    )
    _add_config(revoke)
    target = revoke.add_mutually_exclusive_group(required=True)
    target.add_argument("--user", help="every session of this username (or sub)")
    target.add_argument("--id", dest="session_id", help="one session, by the id list shows")
    revoke.set_defaults(handler=_sessions_revoke)

    schema = verbs.add_parser("schema", help="print the JSON Schema of the configuration")
    schema.set_defaults(handler=_schema)

    login = verbs.add_parser(
        "login", help="get a Hugging Face token for a gateway (device code) and save it"
    )
    login.add_argument(
        "url",
        nargs="?",
        help="the gateway's public URL, e.g. https://tools.example.com (default: "
        "server.public_url of -c FILE)",
    )
    _add_config(login)
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
    login.set_defaults(handler=_login, usage_error=login.error)

    for verb in (*verbs.choices.values(), *session_verbs.choices.values()):
        _add_version(verb)
    return parser


def _add_version(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--version", action="version", version=f"hf-gateway {__version__}")


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c",
        "--config",
        default=_config_env(),
        metavar="FILE",
        help="path to gateway.yaml (default: HF_GATEWAY_CONFIG)",
    )


def _login(args: argparse.Namespace) -> int:
    from pathlib import Path

    from gateway.login_command import LoginRequest, login
    from gateway.saved_tokens import token_file

    url = args.url
    if not url:
        if not args.config:
            args.usage_error("give URL, -c FILE or set HF_GATEWAY_CONFIG")
            return EXIT_USAGE
        config = _offline_config(args.config)  # login needs public_url, not the secrets
        if config is None:
            return EXIT_USAGE
        url = config.server.public_url
    request = LoginRequest(
        url=url,
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


LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


def log_level_problem(environ: Mapping[str, str]) -> str | None:
    """The one-line complaint about ``HF_GATEWAY_LOG_LEVEL``, or None when it is usable."""
    value = environ.get("HF_GATEWAY_LOG_LEVEL")
    if value is None or value.lower() in LOG_LEVELS:
        return None
    nearest = difflib.get_close_matches(value.lower(), LOG_LEVELS, n=1, cutoff=0.0)
    return (
        f"HF_GATEWAY_LOG_LEVEL: {value!r} is not a log level; use one of "
        f"{', '.join(LOG_LEVELS)} (nearest: {nearest[0]})"
    )


def _log_level_usable() -> bool:
    problem = log_level_problem(os.environ)
    if problem is not None:
        print(f"hf-gateway: {problem}", file=sys.stderr)
    return problem is None


def _run(args: argparse.Namespace) -> int:
    if not _log_level_usable():
        return EXIT_USAGE
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

    if not _log_level_usable():
        return EXIT_USAGE
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
    return load_or_report(args.config, sys.stderr)


@contextlib.contextmanager
def _added_environ(added: Mapping[str, str]) -> Iterator[None]:
    """``added`` in os.environ for the duration, as if the shell had set it."""
    os.environ.update(added)
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


def _offline_config(path: str) -> GatewayConfig | None:
    """The configuration at ``path`` with placeholders for unset secret variables."""
    from gateway.offline_config import placeholder_environ

    with _added_environ(placeholder_environ(path)):
        return load_or_report(path, sys.stderr)


def _explain(args: argparse.Namespace) -> int:
    """explain never uses the secrets: unset ones get placeholders (gateway.offline_config)."""
    from gateway.explain_command import run_explain
    from gateway.offline_config import placeholder_environ

    added = placeholder_environ(args.config) if args.config else {}
    with _added_environ(added):
        return run_explain(args)


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
    if count == 0:
        target = f"user {args.user}" if args.user else f"id {args.session_id}"
        print(f"sessions: no session matched {target}; nothing revoked", file=sys.stderr)
        return EXIT_DENY
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
    if args.file and args.config and args.file != args.config:
        args.usage_error("give FILE or -c FILE, not both")
    path: str | None = args.file or args.config or _config_env()
    if path is None:  # argparse's own usage error (exit 2), as when FILE was required
        args.usage_error("give FILE, -c FILE or set HF_GATEWAY_CONFIG")
        return EXIT_USAGE
    config = load_or_report(path, sys.stderr)
    if config is None or not _signing_key_usable(config, path):
        return EXIT_USAGE
    print(
        f"{path}: ok ({len(config.routes)} routes, "
        f"{len(config.policies)} policies, store {config.session.store})"
    )
    if args.connect:
        return _connect_check(config)
    return EXIT_OK


def _connect_check(config: GatewayConfig) -> int:
    """check-config --connect: one line per check (gateway.connect_check); any FAIL is 1."""
    from gateway.connect_check import check_connections, format_results

    results = asyncio.run(check_connections(config))
    for line in format_results(results):
        print(line)
    return EXIT_OK if all(result.ok for result in results) else EXIT_DENY


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
