"""One shape for every verb: ``-c FILE`` or ``HF_GATEWAY_CONFIG``, ``--version``, exit codes
that say what happened, and one-line errors instead of tracebacks."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway import __version__
from gateway.admin import _manager
from gateway.cli import log_level_problem, main
from gateway.config import load_config
from gateway.identity import Identity
from gateway.providers.base import TokenSet
from tests.support.redis_server import RedisServer
from tests.unit.conftest import minimal_raw_config, write_yaml

REPO = Path(__file__).resolve().parents[2]
ENV = "HF_GATEWAY_CONFIG"

# verb argv -> the exit code of that verb for an invalid configuration
CONFIG_VERBS: dict[str, tuple[list[str], int]] = {
    "run": (["run"], 2),
    "check-config": (["check-config"], 2),
    "healthcheck": (["healthcheck"], 1),  # Docker reserves 2: every failure is 1
    "explain": (["explain", "https://tools.example.com/"], 2),
    "sessions list": (["sessions", "list"], 2),
    "sessions revoke": (["sessions", "revoke", "--user", "alice"], 2),
    "login": (["login"], 2),
}
EVERY_VERB = [
    ["run"],
    ["demo"],
    ["check-config"],
    ["healthcheck"],
    ["explain"],
    ["sessions"],
    ["sessions", "list"],
    ["sessions", "revoke"],
    ["schema"],
    ["login"],
]


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


@pytest.fixture
def invalid(tmp_path: Path) -> Path:
    return write_yaml(tmp_path / "invalid.yaml", minimal_raw_config(server={"workers": "many"}))


@pytest.fixture
def missing(tmp_path: Path) -> Path:
    return tmp_path / "missing.yaml"


@pytest.fixture
def valid(tmp_path: Path) -> Path:
    return write_yaml(tmp_path / "valid.yaml", minimal_raw_config())


# --------------------------------------------------------------------------- --version


@pytest.mark.parametrize("verb", EVERY_VERB, ids=" ".join)
def test_every_verb_answers_version(verb: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main([*verb, "--version"])
    assert stopped.value.code == 0
    assert capsys.readouterr().out == f"hf-gateway {__version__}\n"


def test_an_unknown_option_next_to_a_verb_is_still_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The twin: --version is an option of each verb, not a pass for anything."""
    with pytest.raises(SystemExit) as stopped:
        main(["schema", "--verison"])
    assert stopped.value.code == 2
    assert "unrecognized arguments: --verison" in capsys.readouterr().err


# --------------------------------------------------------------------------- -c and the env


@pytest.mark.parametrize("verb", CONFIG_VERBS, ids=str)
def test_every_config_verb_reads_dash_c(
    verb: str, missing: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """-c FILE is read: a file that is not there is named."""
    monkeypatch.delenv(ENV, raising=False)
    argv, code = CONFIG_VERBS[verb]
    got, _, err = _run([*argv, "-c", str(missing)], capsys)
    assert got == code
    assert f"{missing}: cannot read" in err


@pytest.mark.parametrize("verb", CONFIG_VERBS, ids=str)
def test_every_config_verb_reads_hf_gateway_config(
    verb: str, missing: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV, str(missing))
    argv, code = CONFIG_VERBS[verb]
    got, _, err = _run(argv, capsys)
    assert got == code
    assert f"{missing}: cannot read" in err


@pytest.mark.parametrize("verb", sorted(set(CONFIG_VERBS) - {"healthcheck"}), ids=str)
def test_every_config_verb_validates_the_whole_file(
    verb: str, invalid: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """(healthcheck reads server.listen only, so that a probe never fails on the rest.)"""
    monkeypatch.setenv(ENV, str(invalid))
    argv, code = CONFIG_VERBS[verb]
    got, _, err = _run(argv, capsys)
    assert got == code
    assert "server.workers: must be an integer" in err


@pytest.mark.parametrize("verb", ["check-config", "explain"], ids=str)
def test_dash_c_wins_over_hf_gateway_config(
    verb: str,
    valid: Path,
    invalid: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(ENV, str(invalid))
    argv = CONFIG_VERBS[verb][0] + (["--user", "alice"] if verb == "explain" else [])
    assert _run([*argv, "-c", str(valid)], capsys)[0] == 0


@pytest.mark.parametrize("verb", CONFIG_VERBS, ids=str)
def test_every_config_verb_without_a_config_says_how_to_give_one(
    verb: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV, raising=False)
    argv, code = CONFIG_VERBS[verb]
    try:
        got, _, err = _run(argv, capsys)
    except SystemExit as stopped:  # argparse's usage error
        got, err = int(str(stopped.code)), capsys.readouterr().err
    assert got == code
    assert "HF_GATEWAY_CONFIG" in err


def test_check_config_takes_dash_c_as_well_as_the_file(
    valid: Path, invalid: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(["check-config", "-c", str(valid)], capsys)[0] == 0
    assert _run(["check-config", str(valid)], capsys)[0] == 0
    assert _run(["check-config", str(valid), "-c", str(valid)], capsys)[0] == 0
    with pytest.raises(SystemExit) as stopped:
        main(["check-config", str(valid), "-c", str(invalid)])
    assert stopped.value.code == 2
    assert "give FILE or -c FILE, not both" in capsys.readouterr().err


# --------------------------------------------------------------------------- explain offline

OFFLINE = {
    "server": {"public_url": "https://tools.example.com"},
    "provider": {
        "client_id": "${HFGW_TEST_UNSET_ID}",
        "client_secret": "${HFGW_TEST_UNSET_SECRET}",
    },
    "session": {
        "store": "redis",
        "redis_url": "${HFGW_TEST_UNSET_REDIS}",
        "secret": "${HFGW_TEST_UNSET_SESSION}",
    },
    "policies": {"writers": {"allow": [{"org": "${HFGW_TEST_ORG:-acme}", "min_role": "write"}]}},
    "routes": [{"name": "app", "upstream": "http://127.0.0.1:3000", "policy": "writers"}],
}


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith("HFGW_TEST_"):
            monkeypatch.delenv(name)
    return write_yaml(tmp_path / "offline.yaml", OFFLINE)


def test_explain_needs_no_secrets(offline: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Unset secret variables get placeholders for explain, which never uses them."""
    url = "https://tools.example.com/"
    argv = ["explain", "-c", str(offline), url, "--user"]
    code, out, err = _run([*argv, "a", "--org", "acme:write"], capsys)
    assert (code, err) == (0, "")
    assert out.splitlines()[:2] == ["route: app", "decision: allow"]
    code, out, _ = _run([*argv, "b", "--org", "acme:read"], capsys)
    assert (code, out.splitlines()[1]) == (1, "decision: deny")
    assert not any(name.startswith("HFGW_TEST_") for name in os.environ)  # nothing leaks


def test_check_config_still_reports_the_unset_secrets(
    offline: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The twin: check-config (and run) never use placeholders."""
    code, _, err = _run(["check-config", str(offline)], capsys)
    assert code == 2
    assert "provider.client_secret: environment variable HFGW_TEST_UNSET_SECRET is not set" in err
    assert "session.secret: environment variable HFGW_TEST_UNSET_SESSION is not set" in err


def test_explain_still_reports_an_unset_variable_its_answer_depends_on(
    tmp_path: Path, offline: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A policy's ${HF_ORG} decides who gets in: no placeholder stands in for it."""
    raw = dict(OFFLINE, policies={"writers": {"allow": [{"org": "${HFGW_TEST_ORG}"}]}})
    path = write_yaml(tmp_path / "org.yaml", raw)
    code, out, err = _run(["explain", "-c", str(path), "/", "--user", "a"], capsys)
    assert (code, out) == (2, "")
    assert "environment variable HFGW_TEST_ORG is not set" in err
    assert "HFGW_TEST_UNSET_SECRET" not in err


# --------------------------------------------------------------------------- sessions revoke


def _redis_config(tmp_path: Path, redis_server: RedisServer) -> Path:
    session = {"store": "redis", "redis_url": redis_server.url, "redis_prefix": "cli-revoke:"}
    return write_yaml(tmp_path / "redis.yaml", minimal_raw_config(session=session))


def _sign_in(config_path: Path, username: str) -> None:
    async def create() -> None:
        manager = _manager(load_config(config_path))
        try:
            identity = Identity(sub=f"sub-{username}", username=username)
            await manager.create(identity, TokenSet("at", None, None, frozenset({"openid"})))
        finally:
            await manager.store.close()

    asyncio.run(create())


def test_revoke_that_matches_nothing_exits_1(
    tmp_path: Path, redis_server: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _redis_config(tmp_path, redis_server)
    _sign_in(config, "alice")
    assert _run(["sessions", "revoke", "-c", str(config), "--user", "mallory"], capsys) == (
        1,
        "",
        "sessions: no session matched user mallory; nothing revoked\n",
    )
    assert _run(["sessions", "revoke", "-c", str(config), "--id", "0123456789"], capsys) == (
        1,
        "",
        "sessions: no session matched id 0123456789; nothing revoked\n",
    )
    assert _run(["sessions", "revoke", "-c", str(config), "--user", "alice"], capsys) == (
        0,
        "revoked 1 session\n",
        "",
    )
    # alice's session is gone: revoking it again matches nothing
    assert _run(["sessions", "revoke", "-c", str(config), "--user", "alice"], capsys)[0] == 1


# --------------------------------------------------------------------------- log level


@pytest.mark.parametrize("value", ["debug", "INFO", "Warning", "error", "critical"])
def test_the_log_levels_are_accepted_in_any_case(value: str) -> None:
    assert log_level_problem({"HF_GATEWAY_LOG_LEVEL": value}) is None
    assert log_level_problem({}) is None


def test_a_bad_log_level_is_one_line_not_a_traceback(valid: Path) -> None:
    """Before, logging.basicConfig raised ValueError: a traceback from `hf-gateway run`."""
    env = {**os.environ, "HF_GATEWAY_LOG_LEVEL": "verbsoe"}
    for verb in (["run", "-c", str(valid)], ["demo", "--port", "1"]):
        done = subprocess.run(
            [sys.executable, "-m", "gateway", *verb],
            capture_output=True,
            text=True,
            env=env,
            cwd=REPO,
            timeout=60,
            check=False,
        )
        assert (done.returncode, done.stdout) == (2, "")
        assert done.stderr == (
            "hf-gateway: HF_GATEWAY_LOG_LEVEL: 'verbsoe' is not a log level; "
            "use one of debug, info, warning, error, critical (nearest: error)\n"
        )


def test_the_nearest_log_level_is_named() -> None:
    problem = log_level_problem({"HF_GATEWAY_LOG_LEVEL": "warn1ng"})
    assert problem is not None and problem.endswith("(nearest: warning)")


# --------------------------------------------------------------------------- login -c


def test_login_without_url_or_config_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV, raising=False)
    with pytest.raises(SystemExit) as stopped:
        main(["login"])
    assert stopped.value.code == 2
    assert "give URL, -c FILE or set HF_GATEWAY_CONFIG" in capsys.readouterr().err


async def test_login_takes_the_gateway_url_from_dash_c(tmp_path: Path) -> None:
    """login -c FILE asks the gateway at server.public_url (here a stand-in that knows no
    device app, so login then asks for --client-id: exit 2 without leaving the machine)."""
    from aiohttp import web

    seen: list[str] = []

    async def record(request: web.Request) -> web.Response:
        seen.append(request.path)
        return web.Response(status=404)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        config = write_yaml(
            tmp_path / "gateway.yaml",
            minimal_raw_config(server={"public_url": f"http://127.0.0.1:{port}"}),
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("HF_GATEWAY_")}
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway",
            "login",
            "-c",
            str(config),
            "--issuer",
            f"http://127.0.0.1:{port}",
            "--token-file",
            str(tmp_path / "tokens.json"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            cwd=REPO,
        )
        out, err = await asyncio.wait_for(process.communicate(), 30)
    finally:
        await runner.cleanup()
    assert process.returncode == 2, err.decode()
    assert "/_gateway/device" in seen
    assert "--client-id" in err.decode()
