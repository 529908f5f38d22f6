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
