"""``hf-gateway explain`` on the policy criteria: each allow beside its deny twin.

The exit code is the verdict (0 allow, 1 deny, 2 usage), and the words say why.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli import main
from tests.unit.conftest import minimal_raw_config, write_yaml

HOST = "https://tools.example.com"
ROUTES = [
    {
        "name": "writers",
        "path": "/writers",
        "policy": {"allow": [{"org": "acme", "min_role": "write"}]},
    },
    {
        "name": "any-token",
        "path": "/any-token",
        "policy": {"allow": [{"org": "acme", "min_role": "write", "token_role": "any"}]},
    },
]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    routes = [{**r, "upstream": "http://127.0.0.1:3000"} for r in ROUTES]
    return write_yaml(tmp_path / "gateway.yaml", minimal_raw_config(routes=routes))


def explain(config: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["explain", "-c", str(config), *args])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out + err


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        pytest.param(["--org", "acme:write"], 0, "matched an allow rule", id="session of a writer"),
        pytest.param(
            ["--org", "acme:write", "--token-role", "write"], 0, "matched", id="write token"
        ),
        pytest.param(
            ["--org", "acme:write", "--token-role", "read"],
            1,
            "a read token acts as read at most, below write",
            id="read token of a writer",
        ),
    ],
)
def test_explain_caps_min_role_by_the_token_role(
    config: Path, capsys: pytest.CaptureFixture[str], args: list[str], code: int, words: str
) -> None:
    got, out = explain(
        config, capsys, f"{HOST}/writers", "--user", "ci-bot", "--method", "POST", *args
    )
    assert got == code
    assert words in out


def test_explain_token_role_any_judges_the_membership(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"{HOST}/any-token"
    assert (
        explain(config, capsys, url, "--user", "a", "--org", "acme:write", "--token-role", "read")[
            0
        ]
        == 0
    )
    assert (
        explain(config, capsys, url, "--user", "a", "--org", "acme:read", "--token-role", "write")[
            0
        ]
        == 1
    )


@pytest.fixture
def cookbook() -> Path:
    return Path(__file__).resolve().parents[2] / "examples/policies/cookbook.yaml"


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        pytest.param(["/ops/", "--source-ip", "192.0.2.9"], 0, "matched", id="office address"),
        pytest.param(
            ["/ops/", "--source-ip", "198.51.100.1"],
            1,
            "client address 198.51.100.1 is not in these networks",
            id="elsewhere",
        ),
        pytest.param(["/ops/"], 1, "client address unknown", id="no address given"),
        pytest.param(["/ops/", "--source-ip", "nope"], 2, "not an IP address", id="bad address"),
        pytest.param(["/review/", "--email", "Pat@partner.example"], 0, "matched", id="email"),
        pytest.param(
            ["/review/", "--email", "pat@eu.partner.example"],
            1,
            "email is not a verified address listed",
            id="other email",
        ),
        pytest.param(["/board/x"], 0, "matched", id="path outside settings"),
        pytest.param(
            ["/board/settings/x"], 1, "the negated rule matched", id="settings need admin"
        ),
    ],
)
def test_explain_judges_source_ip_email_and_path(
    cookbook: Path, capsys: pytest.CaptureFixture[str], args: list[str], code: int, words: str
) -> None:
    url, *rest = args
    org = [] if url.startswith("/review") else ["--org", "acme:read"]
    got, out = explain(cookbook, capsys, HOST + url, "--user", "pat", *org, *rest)
    assert got == code, out
    assert words in out


def test_explain_lets_preflights_through_only_where_the_route_says(
    cookbook: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = explain(cookbook, capsys, f"{HOST}/api/data/x", "--preflight")
    assert (code, "reason: public cors_preflight") == (0, out.splitlines()[2])
    code, out = explain(cookbook, capsys, f"{HOST}/notebooks/", "--preflight")
    assert code == 1
    assert "reason: unauthenticated" in out
