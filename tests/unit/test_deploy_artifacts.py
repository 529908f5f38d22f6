"""The deployment artefacts, checked without a container engine or a cluster.

- The image: its default config passes ``check-config`` with the Dockerfile's own ENV and
  the variables its documented ``docker run`` passes, laid out where the Dockerfile's
  COPY lines put it; the HEALTHCHECK runs ``hf-gateway healthcheck``.
- Compose: the compose-spec JSON schema (shipped by check-jsonschema), plus what a schema
  cannot say (the playground's one issuer URL for browser and gateway, required secrets).
- Kubernetes: the kustomize base rendered by ``kubectl kustomize`` (offline), every object
  against the Kubernetes JSON schemas shipped by kubernetes-validate, plus the config the
  pods would read passing ``check-config`` with the pod's env and mounted files.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.deploy_examples import (
    COMPOSE_DIR,
    REPO,
    InterpolationError,
    documented_run_variables,
    final_stage,
    load_compose,
    read_env_file,
    service_environment,
)

MADE_UP = {
    "OAUTH_CLIENT_ID": "deploy-test-client",
    "OAUTH_CLIENT_SECRET": "deploy-test-client-secret",
    "GATEWAY_SECRET": "deploy-test-gateway-secret-0123456789abcdef",
    "HF_ORG": "acme",
    "UPSTREAM_URL": "http://tool:8000",
}


def check_config(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``hf-gateway check-config`` in a process that sees only ``env`` (and PATH)."""
    return subprocess.run(
        [sys.executable, "-m", "gateway", "check-config", *args],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# ------------------------------------------------------------------------- the image


@pytest.fixture
def image_root(tmp_path: Path) -> Path:
    """The files the Dockerfile's final stage copies from the build context, at their
    image paths under ``tmp_path``."""
    for source, dest in final_stage().copies:
        target = tmp_path / dest.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / source, target)
    return tmp_path


def image_env(root: Path) -> dict[str, str]:
    """The Dockerfile's ENV, with image paths moved under ``root``."""
    env = final_stage().env
    return {k: str(root / v.lstrip("/")) if v.startswith("/") else v for k, v in env.items()}


def test_the_image_default_config_passes_check_config_with_the_documented_run(
    image_root: Path,
) -> None:
    """``docker run -e ... IMAGE check-config``: the Dockerfile's ENV names the config
    (no file argument), the documented variables are all it needs."""
    assert sorted(documented_run_variables()) == sorted(MADE_UP)
    done = check_config({**image_env(image_root), **MADE_UP})
    config = image_env(image_root)["HF_GATEWAY_CONFIG"]
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == f"{config}: ok (1 routes, 1 policies, store memory)\n"


def test_the_image_default_config_fails_closed_naming_each_missing_variable(
    image_root: Path,
) -> None:
    """With only the Dockerfile's ENV it is refused, and the problems are exactly the
    documented variables: nothing else about the file is wrong, and no secret, org or
    upstream has a default that would let a forgotten variable through."""
    done = check_config(image_env(image_root))
    assert done.returncode == 2
    problems = [line.strip() for line in done.stderr.splitlines()[1:]]
    missing = sorted(p.rsplit("environment variable ", 1)[1] for p in problems)
    assert missing == sorted(f"{name} is not set" for name in documented_run_variables())


def test_the_image_default_config_takes_redis_from_the_environment(image_root: Path) -> None:
    env = {**image_env(image_root), **MADE_UP, "SESSION_STORE": "redis"}
    done = check_config({**env, "REDIS_URL": "redis://redis.internal:6379/2"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.endswith("store redis)\n")
    done = check_config({**env, "REDIS_URL": "http://not-redis"})
    assert done.returncode == 2
    assert "session.redis_url: must start with redis://" in done.stderr


def test_the_healthcheck_is_the_verb_that_follows_server_listen() -> None:
    stage = final_stage()
    assert stage.healthcheck == ["hf-gateway", "healthcheck"]
    assert stage.entrypoint == ["hf-gateway"]
    assert "HF_GATEWAY_CONFIG" in stage.env


def test_the_image_ships_no_example_that_fails_check_config() -> None:
    """Every config file the image copies is one the tests above check."""
    configs = [dest for _, dest in final_stage().copies if dest.endswith((".yaml", ".yml"))]
    assert configs == [final_stage().env["HF_GATEWAY_CONFIG"]]


# ------------------------------------------------------------------------- compose


@pytest.fixture(scope="module")
def compose_schema() -> dict[str, object]:
    import json
    from importlib import resources

    text = (
        resources.files("check_jsonschema.builtin_schemas.vendor")
        .joinpath("compose-spec.json")
        .read_text("utf-8")
    )
    loaded: dict[str, object] = json.loads(text)
    return loaded


def test_the_compose_file_is_valid_compose_spec(compose_schema: dict[str, object]) -> None:
    import jsonschema

    jsonschema.validate(load_compose(), compose_schema)


def test_the_compose_schema_check_is_not_vacuous(compose_schema: dict[str, object]) -> None:
    import jsonschema

    misspelt = load_compose()
    misspelt["services"]["gateway"]["helthcheck"] = {"disable": True}
    with pytest.raises(jsonschema.ValidationError, match="helthcheck"):
        jsonschema.validate(misspelt, compose_schema)
    wrong_type = load_compose()
    wrong_type["services"]["gateway"]["read_only"] = {"yes": 1}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(wrong_type, compose_schema)


def test_the_playground_uses_one_issuer_url_for_browser_and_gateway() -> None:
    """The fake provider shares the gateway's network namespace, its port is published on
    the gateway, and the issuer the gateway is given is the fake's own (localhost)."""
    compose = load_compose()
    services = compose["services"]
    environ = {**read_env_file(COMPOSE_DIR / "playground.env"), "GATEWAY_SECRET": "x" * 40}
    assert environ["COMPOSE_PROFILES"] == "playground"
    assert services["fake-hf"]["profiles"] == ["playground"]
    assert services["fake-hf"]["network_mode"] == "service:gateway"
    fake = service_environment(compose, "fake-hf", environ)
    gateway = service_environment(compose, "gateway", environ)
    assert gateway["HF_ISSUER"] == fake["FAKE_HF_ISSUER"] == "http://localhost:9000"
    assert (
        f"127.0.0.1:{fake['FAKE_HF_PORT']}:{fake['FAKE_HF_PORT']}" in (services["gateway"]["ports"])
    )
    assert gateway["PUBLIC_URL"] == fake["PUBLIC_URL"] == "http://localhost:8080"
    assert "127.0.0.1:8080:8080" in services["gateway"]["ports"]


def test_without_the_playground_the_gateway_talks_to_hugging_face() -> None:
    compose = load_compose()
    filled = {name: "x" * 40 for name in ("OAUTH_CLIENT_ID", "OAUTH_CLIENT_SECRET")}
    environ = {**filled, "GATEWAY_SECRET": "y" * 40, "HF_ORG": "acme"}
    assert service_environment(compose, "gateway", environ)["HF_ISSUER"] == (
        "https://huggingface.co"
    )
    assert "profiles" not in compose["services"]["gateway"]


@pytest.mark.parametrize("name", ["OAUTH_CLIENT_ID", "GATEWAY_SECRET", "HF_ORG"])
@pytest.mark.parametrize("value", [None, ""], ids=["unset", "empty"])
def test_compose_refuses_to_start_without_a_required_value(name: str, value: str | None) -> None:
    """``${VAR:?...}``: compose stops with the message instead of starting a gateway
    that could never sign anyone in (or one with an empty secret)."""
    environ = read_env_file(COMPOSE_DIR / "hf.env.example") | {
        "OAUTH_CLIENT_ID": "id",
        "OAUTH_CLIENT_SECRET": "secret",
        "GATEWAY_SECRET": "z" * 40,
        "HF_ORG": "acme",
    }
    service_environment(load_compose(), "gateway", environ)  # the positive twin
    if value is None:
        del environ[name]
    else:
        environ[name] = value
    with pytest.raises(InterpolationError, match=name):
        service_environment(load_compose(), "gateway", environ)


@pytest.mark.parametrize("env_file", ["playground.env", "hf.env.example"])
def test_the_compose_gateway_config_passes_check_config_with_its_env(env_file: str) -> None:
    """The config folder compose mounts, with the environment compose gives the gateway
    (the example file filled in with made-up values where it is blank)."""
    environ = read_env_file(COMPOSE_DIR / env_file)
    blanks = {k: "made-up-value" for k, v in environ.items() if not v}
    environ |= blanks | {"GATEWAY_SECRET": "w" * 40}
    gateway = service_environment(load_compose(), "gateway", environ)
    done = check_config(gateway, str(COMPOSE_DIR / "config" / "gateway.yaml"))
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.endswith("ok (3 routes, 3 policies, store redis)\n")
