"""The hf-gateway command line: check-config, explain and schema.

Exit codes: 0 ok / allow, 1 deny, 2 invalid config, bad arguments or no route. A user
mistake never shows a traceback.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli import main
from tests.unit.conftest import SECRET, minimal_raw_config, write_yaml

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_ENV = {
    "GATEWAY_SECRET": "example-secret-example-secret-example",
    "OAUTH_CLIENT_ID": "example-client",
    "OAUTH_CLIENT_SECRET": "example-client-secret",
}


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


# --------------------------------------------------------------------------- check-config


def test_check_config_accepts_a_valid_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A valid configuration prints one ok line with a summary and exits 0."""
    path = write_yaml(tmp_path / "gateway.yaml", minimal_raw_config())
    assert _run(["check-config", str(path)], capsys) == (
        0,
        f"{path}: ok (1 routes, 0 policies, store memory)\n",
        "",
    )


def test_check_config_lists_every_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An invalid configuration exits 2 and prints every problem, one per line."""
    raw = minimal_raw_config(server={"workers": "many", "bogus": 1}, session={"secret": "short"})
    path = write_yaml(tmp_path / "gateway.yaml", raw)
    code, out, err = _run(["check-config", str(path)], capsys)
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        f"{path}: invalid configuration (3 problems)",
        "  server.workers: must be an integer",
        "  server.bogus: unknown key",
        "  session.secret: must be at least 32 bytes (one is 5)",
    ]


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        pytest.param("missing.yaml", None, "cannot read: No such file or directory", id="missing"),
        pytest.param("folder", "directory", "cannot read: Is a directory", id="directory"),
        pytest.param("binary.yaml", b"\x89PNG\r\n\x1a\n\x00\xff", "is not UTF-8 text", id="binary"),
        pytest.param(
            "list.yaml",
            b"- server\n- routes\n",
            "must be a mapping of sections (server, provider, ...)",
            id="YAML list",
        ),
        pytest.param(
            "bad.yaml",
            b"server: {public_url: x\n",
            "(line 2, column 1)",
            id="YAML syntax error",
        ),
    ],
)
def test_check_config_never_shows_a_traceback(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    content: bytes | str | None,
    problem: str,
) -> None:
    """Unreadable or unusable files are one problem line naming the file, exit 2."""
    path = tmp_path / name
    if content == "directory":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    code, out, err = _run(["check-config", str(path)], capsys)
    assert (code, out) == (2, "")
    assert err.splitlines()[0] == f"{path}: invalid configuration (1 problem)"
    assert err.splitlines()[1].startswith(f"  {path}: ")
    assert problem in err.splitlines()[1]


def test_check_config_names_a_missing_environment_variable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """${VAR} that is not set is reported with the variable and the key."""
    monkeypatch.delenv("HFGW_TEST_UNSET_SECRET", raising=False)
    raw = minimal_raw_config(session={"secret": "${HFGW_TEST_UNSET_SECRET}"})
    path = write_yaml(tmp_path / "gateway.yaml", raw)
    code, _, err = _run(["check-config", str(path)], capsys)
    assert code == 2
    assert "  session.secret: environment variable HFGW_TEST_UNSET_SECRET is not set" in (
        err.splitlines()
    )


def test_check_config_reads_the_process_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The variable set in the environment is used."""
    monkeypatch.setenv("HFGW_TEST_SECRET", SECRET)
    raw = minimal_raw_config(session={"secret": "${HFGW_TEST_SECRET}"})
    path = write_yaml(tmp_path / "gateway.yaml", raw)
    assert _run(["check-config", str(path)], capsys)[0] == 0


EXAMPLES = sorted((REPO / "config").glob("*.yaml"))


@pytest.mark.parametrize("path", [pytest.param(p, id=p.name) for p in EXAMPLES])
def test_every_example_config_is_valid(
    path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checked-in examples pass check-config with the documented variables set."""
    for name, value in EXAMPLE_ENV.items():
        monkeypatch.setenv(name, value)
    code, out, err = _run(["check-config", str(path)], capsys)
    assert (code, err) == (0, "")
    assert out.startswith(f"{path}: ok (")


def test_there_are_example_configs() -> None:
    """The example test above is not vacuous."""
    assert EXAMPLES


# --------------------------------------------------------------------------- explain

HOST = "tools.example.com"
EXPLAIN_ROUTES = [
    {
        "name": "grafana",
        "path": "/grafana",
        "policy": "staff",
        "public_paths": ["/grafana/public/"],
    },
    {
        "name": "repos",
        "path": "/repos",
        "policy": {"allow": [{"authenticated": True}], "require_scopes": ["read-repos"]},
    },
    {"name": "mail", "path": "/mail", "policy": {"allow": [{"email_domain": "example.com"}]}},
    {"name": "pro", "path": "/pro", "policy": {"allow": [{"pro": True}]}},
    {"name": "api", "path": "/api", "policy": {"allow": [{"method": ["GET", "HEAD"]}]}},
    {"name": "tokens", "path": "/tokens", "policy": {"allow": [{"token_role": "write"}]}},
    {
        "name": "by-id",
        "path": "/by-id",
        "policy": {"allow": [{"org_id": "org-123", "min_role": "read"}]},
    },
]


@pytest.fixture
def explain_config(tmp_path: Path) -> Path:
    raw = minimal_raw_config(
        policies={
            "staff": {
                "allow": [{"org": "acme", "min_role": "write"}, {"user": "alice"}],
                "deny": [{"user": "mallory"}],
            }
        },
        routes=[
            {**route, "host": HOST, "upstream": "http://127.0.0.1:3000"} for route in EXPLAIN_ROUTES
        ],
    )
    return write_yaml(tmp_path / "gateway.yaml", raw)


def _summary(out: str) -> list[str]:
    return [
        line for line in out.splitlines() if line.startswith(("route:", "decision:", "reason:"))
    ]


EXPLAINED = [
    pytest.param(
        ["/grafana/d/1", "--user", "alice"],
        0,
        ["route: grafana", "decision: allow", "reason: allowed allow[1]"],
        id="listed user",
    ),
    pytest.param(
        ["/grafana/d/1", "--user", "bob", "--org", "acme:write"],
        0,
        ["route: grafana", "decision: allow", "reason: allowed allow[0]"],
        id="org role meets min_role",
    ),
    pytest.param(
        ["/grafana/d/1", "--user", "bob", "--org", "acme:read"],
        1,
        [
            "route: grafana",
            "decision: deny",
            "reason: no_matching_allow",
            "reason: rule_failed allow[0].org",
            "reason: rule_failed allow[1].user",
        ],
        id="org role below min_role",
    ),
    pytest.param(
        ["/grafana/d/1", "--user", "bob", "--org", "acme"],
        1,
        [
            "route: grafana",
            "decision: deny",
            "reason: no_matching_allow",
            "reason: rule_failed allow[0].org",
            "reason: rule_failed allow[1].user",
            "reason: org_not_granted allow[0]",
        ],
        id="org without a role is not granted",
    ),
    pytest.param(
        ["/grafana/d/1", "--user", "mallory", "--org", "acme:admin"],
        1,
        ["route: grafana", "decision: deny", "reason: denied deny[0]"],
        id="deny rule",
    ),
    pytest.param(
        ["/grafana/d/1"],
        1,
        ["route: grafana", "decision: deny", "reason: unauthenticated"],
        id="anonymous",
    ),
    pytest.param(
        ["/grafana/public/logo.svg"],
        0,
        ["route: grafana", "decision: allow", "reason: public public_paths[0]"],
        id="anonymous on a public path",
    ),
    pytest.param(
        ["/grafana/public/../d/1"],
        1,
        ["route: grafana", "decision: deny", "reason: unauthenticated"],
        id="dot-dot out of a public path",
    ),
    pytest.param(
        ["/repos", "--user", "bob"],
        1,
        ["route: repos", "decision: deny", "reason: missing_scopes require_scopes"],
        id="provider scopes lack a required scope",
    ),
    pytest.param(
        ["/repos", "--user", "bob", "--scope", "openid", "--scope", "read-repos"],
        0,
        ["route: repos", "decision: allow", "reason: allowed allow[0]"],
        id="required scope granted",
    ),
    pytest.param(
        ["/mail", "--user", "bob", "--email", "bob@example.com"],
        0,
        ["route: mail", "decision: allow", "reason: allowed allow[0]"],
        id="email in domain",
    ),
    pytest.param(
        ["/mail", "--user", "bob", "--email", "bob@evilexample.com"],
        1,
        [
            "route: mail",
            "decision: deny",
            "reason: no_matching_allow",
            "reason: rule_failed allow[0].email_domain",
        ],
        id="email outside the domain",
    ),
    pytest.param(
        ["/pro", "--user", "bob", "--pro"],
        0,
        ["route: pro", "decision: allow", "reason: allowed allow[0]"],
        id="pro user",
    ),
    pytest.param(
        ["/pro", "--user", "bob"],
        1,
        [
            "route: pro",
            "decision: deny",
            "reason: no_matching_allow",
            "reason: rule_failed allow[0].pro",
        ],
        id="not a pro user",
    ),
    pytest.param(
        ["/api/x", "--user", "bob", "--method", "HEAD"],
        0,
        ["route: api", "decision: allow", "reason: allowed allow[0]"],
        id="method listed",
    ),
    pytest.param(
        ["/api/x", "--user", "bob", "--method", "delete"],
        1,
        [
            "route: api",
            "decision: deny",
            "reason: no_matching_allow",
            "reason: rule_failed allow[0].method",
        ],
        id="method not listed",
    ),
    pytest.param(
        ["/tokens", "--user", "bob", "--token-role", "write"],
        0,
        ["route: tokens", "decision: allow", "reason: allowed allow[0]"],
        id="token role",
    ),
    pytest.param(
        ["/by-id", "--user", "bob", "--org-id", "org-123:read"],
        0,
        ["route: by-id", "decision: allow", "reason: allowed allow[0]"],
        id="org by id",
    ),
    pytest.param(
        ["https://TOOLS.example.com:8443/grafana/x?q=/public/", "--user", "alice"],
        0,
        ["route: grafana", "decision: allow", "reason: allowed allow[1]"],
        id="absolute URL with port and query",
    ),
    pytest.param(
        ["https://someone@tools.example.com/grafana/x", "--user", "alice"],
        0,
        ["route: grafana", "decision: allow", "reason: allowed allow[1]"],
        id="absolute URL with userinfo",
    ),
]


@pytest.mark.parametrize(("args", "code", "lines"), EXPLAINED)
def test_explain_prints_route_decision_and_reasons(
    explain_config: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    code: int,
    lines: list[str],
) -> None:
    """explain shows the route, the decision and one `reason: CODE RULE-PATH` per line."""
    exit_code, out, _ = _run(["explain", "-c", str(explain_config), *args], capsys)
    assert (exit_code, _summary(out)) == (code, lines)


def test_explain_json_output_parses(
    explain_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--json prints one JSON document with the route, upstream, decision and reasons."""
    argv = ["explain", "-c", str(explain_config), "/repos", "--user", "bob", "--json"]
    code, out, _ = _run(argv, capsys)
    assert code == 1
    assert json.loads(out) == {
        "route": "repos",
        "upstream": "http://127.0.0.1:3000",
        "decision": "deny",
        "reasons": [
            {
                "code": "missing_scopes",
                "rule": "require_scopes",
                "detail": "missing scopes: read-repos",
                "values": ["read-repos"],
            }
        ],
    }


@pytest.mark.parametrize(
    ("args", "stdout_line", "stderr_text"),
    [
        pytest.param(["https://other.org/grafana"], "route: (none)", "", id="host without routes"),
        pytest.param(["/nothing-here"], "route: (none)", "", id="path without a route"),
        pytest.param(["/grafana/%2fadmin"], "reason: bad_path", "", id="encoded slash"),
        pytest.param(
            ["/grafana", "--user", "bob", "--org", "acme:owner"],
            None,
            "unknown role 'owner'",
            id="unknown role",
        ),
        pytest.param(["/grafana", "--org", "acme:write"], None, "need --user", id="org, no user"),
        pytest.param(["/grafana", "--pro"], None, "need --user", id="pro without a user"),
        pytest.param(
            ["/grafana", "--token-role", "read"], None, "need --user", id="token role, no user"
        ),
        pytest.param(["/grafana", "--scope", "x"], None, "need --user", id="scope without a user"),
        pytest.param(["http://[::1/grafana"], None, "invalid URL", id="malformed URL"),
        pytest.param(["http://tools.example.com:99999/"], None, "invalid URL", id="bad port"),
    ],
)
def test_explain_exits_2_for_no_route_and_bad_arguments(
    explain_config: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    stdout_line: str | None,
    stderr_text: str,
) -> None:
    """No route, a path the gateway refuses and argument mistakes exit 2 with a message."""
    code, out, err = _run(["explain", "-c", str(explain_config), *args], capsys)
    assert code == 2
    if stdout_line is None:
        assert out == ""
    else:
        assert any(line.startswith(stdout_line) for line in out.splitlines())
    assert stderr_text in err


def test_explain_with_an_invalid_config_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """explain validates the configuration first and lists its problems."""
    path = write_yaml(tmp_path / "gateway.yaml", minimal_raw_config(bogus=1))
    code, out, err = _run(["explain", "-c", str(path), "/", "--user", "alice"], capsys)
    assert (code, out) == (2, "")
    assert "  bogus: unknown key" in err.splitlines()


# --------------------------------------------------------------------------- schema, usage


def test_schema_prints_the_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    """`schema` writes a JSON Schema document editors can use."""
    code, out, _ = _run(["schema"], capsys)
    assert code == 0
    schema = json.loads(out)
    assert schema["title"] == "hf-gateway configuration"
    assert schema["additionalProperties"] is False


def test_no_verb_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    """Running without a verb is a usage mistake."""
    code, out, err = _run([], capsys)
    assert code == 2
    assert "check-config" in err


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["frobnicate"], id="unknown verb"),
        pytest.param(["check-config"], id="missing file argument"),
        pytest.param(["explain", "/"], id="explain without -c"),
    ],
)
def test_argument_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """argparse rejects bad arguments with exit status 2 and a usage line."""
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    assert "usage: hf-gateway" in capsys.readouterr().err


def test_the_installed_console_script_runs(tmp_path: Path) -> None:
    """`hf-gateway check-config` works as a real process through the entry point."""
    script = shutil.which("hf-gateway") or shutil.which(
        "hf-gateway", path=str(Path(sys.executable).parent)
    )
    command = [script] if script else [sys.executable, "-m", "gateway"]
    path = write_yaml(tmp_path / "gateway.yaml", minimal_raw_config())
    result = subprocess.run(
        [*command, "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == f"{path}: ok (1 routes, 0 policies, store memory)\n"


@pytest.mark.parametrize(
    ("url", "code"),
    [
        pytest.param("https://tools.example.com/nowhere", "no_route", id="no route"),
        pytest.param("https://tools.example.com/a%2fb", "bad_path", id="refused path"),
    ],
)
def test_explain_json_reports_no_route_and_refused_paths_as_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], url: str, code: str
) -> None:
    """--json stays machine-readable when there is no decision to explain (exit 2)."""
    raw = minimal_raw_config()
    raw["routes"][0]["path"] = "/grafana"
    path = write_yaml(tmp_path / "gateway.yaml", raw)
    exit_code, out, _ = _run(["explain", "-c", str(path), url, "--json"], capsys)
    assert exit_code == 2
    verdict = json.loads(out)
    assert verdict["route"] is None
    assert verdict["decision"] == "deny"
    assert [r["code"] for r in verdict["reasons"]] == [code]


@pytest.mark.parametrize("verb", ["check-config", "run"])
def test_an_unusable_signing_key_is_a_config_error_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], verb: str
) -> None:
    """A key file that exists but holds no usable key is reported at its path, exit 2."""
    (tmp_path / "key.pem").write_text("not a key\n")
    raw = minimal_raw_config()
    raw["identity"] = {"assertion": {"signing_key_file": "key.pem"}}
    path = write_yaml(tmp_path / "gateway.yaml", raw)
    args = [verb, str(path)] if verb == "check-config" else [verb, "-c", str(path)]
    code, out, err = _run(args, capsys)
    assert code == 2
    assert "identity.assertion.signing_key_file: " in err
    assert "Traceback" not in out + err


def test_a_reader_that_leaves_early_is_no_traceback() -> None:
    """`hf-gateway schema | head -c1` gets its byte, nothing lands on stderr and the exit is
    141 as for a shell's SIGPIPE; the whole schema through a reader that stays is valid JSON
    (its twin)."""
    command = [sys.executable, "-m", "gateway", "schema"]
    read_end, write_end = os.pipe()
    # A one-page pipe, so the schema (about 45 KB) cannot fit before the reader leaves.
    fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 4096)
    early = subprocess.Popen(command, stdout=write_end, stderr=subprocess.PIPE)
    os.close(write_end)
    assert os.read(read_end, 1) == b"{"
    os.close(read_end)  # the reader leaves, as head does
    _, stderr = early.communicate(timeout=30)
    assert early.returncode == 141
    assert stderr == b""
    whole = subprocess.run(command, capture_output=True, timeout=30, check=True)
    assert json.loads(whole.stdout)["title"] == "hf-gateway configuration"
