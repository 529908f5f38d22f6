"""HF_GATEWAY_CONFIG names the configuration for every verb that reads one.

The image sets it (Dockerfile ENV), so ``docker run IMAGE check-config`` and
``docker run IMAGE explain URL`` check the file the gateway runs with. An explicit file
argument always wins over the variable.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli import main
from gateway.healthcheck import HealthcheckError, listen_address, probe_url
from tests.unit.conftest import minimal_raw_config, write_yaml

ENV = "HF_GATEWAY_CONFIG"


@pytest.fixture
def valid(tmp_path: Path) -> Path:
    return write_yaml(tmp_path / "valid.yaml", minimal_raw_config())


@pytest.fixture
def invalid(tmp_path: Path) -> Path:
    return write_yaml(tmp_path / "invalid.yaml", minimal_raw_config(server={"workers": "many"}))


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


# --------------------------------------------------------------------------- check-config


def test_check_config_without_a_file_checks_hf_gateway_config(
    valid: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV, str(valid))
    assert _run(["check-config"], capsys) == (
        0,
        f"{valid}: ok (1 routes, 0 policies, store memory)\n",
        "",
    )


def test_check_config_without_a_file_reports_the_problems_of_hf_gateway_config(
    invalid: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The variable is not a formality: an invalid file it names fails the check."""
    monkeypatch.setenv(ENV, str(invalid))
    code, out, err = _run(["check-config"], capsys)
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        f"{invalid}: invalid configuration (1 problem)",
        "  server.workers: must be an integer",
    ]


def test_check_config_file_argument_wins_over_hf_gateway_config(
    valid: Path, invalid: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV, str(valid))
    assert _run(["check-config", str(invalid)], capsys)[0] == 2
    monkeypatch.setenv(ENV, str(invalid))
    assert _run(["check-config", str(valid)], capsys)[0] == 0


@pytest.mark.parametrize("value", [None, ""], ids=["unset", "empty"])
def test_check_config_with_neither_is_a_usage_error(
    value: str | None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    if value is None:
        monkeypatch.delenv(ENV, raising=False)
    else:
        monkeypatch.setenv(ENV, value)
    with pytest.raises(SystemExit) as caught:
        main(["check-config"])
    err = capsys.readouterr().err
    assert caught.value.code == 2
    assert err.startswith("usage: hf-gateway check-config")
    assert err.endswith("error: give FILE, -c FILE or set HF_GATEWAY_CONFIG\n")


# --------------------------------------------------------------------------- explain


def test_explain_without_c_uses_hf_gateway_config(
    valid: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV, str(valid))
    code, out, _ = _run(["explain", "https://tools.example.com/", "--user", "alice"], capsys)
    assert (code, out.splitlines()[:2]) == (0, ["route: app", "decision: allow"])
    code, out, _ = _run(["explain", "https://tools.example.com/"], capsys)
    assert (code, out.splitlines()[:2]) == (1, ["route: app", "decision: deny"])


def test_explain_c_wins_over_hf_gateway_config(
    valid: Path, invalid: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV, str(invalid))
    code, out, _ = _run(["explain", "-c", str(valid), "/", "--user", "alice"], capsys)
    assert (code, out.splitlines()[1]) == (0, "decision: allow")
    monkeypatch.setenv(ENV, str(valid))
    code, out, err = _run(["explain", "-c", str(invalid), "/", "--user", "alice"], capsys)
    assert (code, out) == (2, "")
    assert err.splitlines()[0] == f"{invalid}: invalid configuration (1 problem)"


def test_explain_with_neither_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV, raising=False)
    with pytest.raises(SystemExit) as caught:
        main(["explain", "/"])
    err = capsys.readouterr().err
    assert caught.value.code == 2
    assert err.startswith("usage: hf-gateway explain")
    assert err.endswith("error: give -c FILE or set HF_GATEWAY_CONFIG\n")


# --------------------------------------------------------------------------- healthcheck


def test_healthcheck_with_no_configuration_is_unhealthy_not_reserved_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Docker reserves exit 2 in HEALTHCHECK; every failure is 1."""
    monkeypatch.delenv(ENV, raising=False)
    code, _, err = _run(["healthcheck"], capsys)
    assert (code, err) == (1, "healthcheck: give -c FILE or set HF_GATEWAY_CONFIG\n")


@pytest.mark.parametrize(
    ("listen", "url"),
    [
        ("0.0.0.0:8080", "http://127.0.0.1:8080/_gateway/healthz"),
        ("[::]:9000", "http://[::1]:9000/_gateway/healthz"),
        ("127.0.0.1:8181", "http://127.0.0.1:8181/_gateway/healthz"),
        ("10.1.2.3:80", "http://10.1.2.3:80/_gateway/healthz"),
        ("[fd00::5]:8080", "http://[fd00::5]:8080/_gateway/healthz"),
    ],
)
def test_probe_url_reaches_the_listener_from_the_same_machine(listen: str, url: str) -> None:
    """A wildcard listener is asked on loopback; a specific address on that address."""
    assert probe_url(listen) == url


def test_listen_address_follows_server_listen_and_the_environment(tmp_path: Path) -> None:
    path = write_yaml(
        tmp_path / "g.yaml", minimal_raw_config(server={"listen": "0.0.0.0:${PORT:-8081}"})
    )
    assert listen_address(path, {}) == "0.0.0.0:8081"
    assert listen_address(path, {"PORT": "9999"}) == "0.0.0.0:9999"


def test_listen_address_is_the_default_when_the_file_does_not_say(tmp_path: Path) -> None:
    path = write_yaml(tmp_path / "g.yaml", minimal_raw_config())
    assert listen_address(path, {}) == "0.0.0.0:8080"


@pytest.mark.parametrize(
    ("listen", "environ", "problem"),
    [
        ("0.0.0.0:${NO_SUCH_PORT}", {}, "environment variable NO_SUCH_PORT is not set"),
        ("8080", {}, "server.listen: must be host:port"),
    ],
)
def test_listen_address_refuses_what_the_loader_would_refuse(
    tmp_path: Path, listen: str, environ: dict[str, str], problem: str
) -> None:
    path = write_yaml(tmp_path / "g.yaml", minimal_raw_config(server={"listen": listen}))
    with pytest.raises(HealthcheckError, match=problem):
        listen_address(path, environ)
