"""examples/spaces/ is what docs/deploy/spaces.md shows, and it holds together: the
Dockerfile passes hadolint, the config loads with the Spaces variables alone, the README
metadata turns OAuth on for port 7860, and start.sh feeds the upstream the config names."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import yaml

from gateway.config import load_config
from gateway.identity import Identity
from gateway.policy import RequestFacts, evaluate
from tests.unit.conftest import identity, org
from tests.unit.test_spaces_config import SPACE_ENV

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "spaces"
GUIDE = ROOT / "docs" / "deploy" / "spaces.md"
FILES = ("README.md", "Dockerfile", "requirements.txt", "start.sh", "gateway.yaml", "app.py")
HADOLINT = Path(sys.executable).parent / "hadolint"


def test_every_file_of_the_example_is_shown_verbatim_in_the_guide() -> None:
    guide = GUIDE.read_text()
    blocks = re.findall(r"^```[a-z]*\n(.*?)^```$", guide, flags=re.M | re.S)
    for name in FILES:
        assert (EXAMPLE / name).read_text() in blocks, f"{name} differs from its guide block"
    assert sorted(p.name for p in EXAMPLE.iterdir()) == sorted(FILES)


def test_the_dockerfile_passes_hadolint_and_copies_what_start_needs() -> None:
    linted = subprocess.run(
        [str(HADOLINT), "Dockerfile"], cwd=EXAMPLE, capture_output=True, text=True, check=False
    )
    assert linted.returncode == 0, linted.stdout + linted.stderr
    dockerfile = (EXAMPLE / "Dockerfile").read_text()
    assert "COPY --chown=1000:1000 gateway.yaml app.py start.sh ./" in dockerfile
    assert "EXPOSE 7860" in dockerfile and "USER 1000" in dockerfile


def test_the_readme_metadata_asks_for_oauth_on_port_7860() -> None:
    text = (EXAMPLE / "README.md").read_text()
    metadata = yaml.safe_load(text.split("---\n")[1])
    assert metadata["sdk"] == "docker" and metadata["app_port"] == 7860
    assert metadata["hf_oauth"] is True
    # openid profile are always granted; read-memberships carries the org roles.
    assert {"email", "read-memberships"} <= set(metadata["hf_oauth_scopes"])


def test_the_config_loads_from_the_spaces_variables_and_guards_by_org_role() -> None:
    config = load_config(EXAMPLE / "gateway.yaml", environ=SPACE_ENV)
    assert config.server.mode == "spaces" and config.server.listen == "0.0.0.0:7860"
    (route,) = config.routes
    policy = config.policy_for(route)

    def allowed(user: Identity) -> bool:
        return evaluate(policy, user, RequestFacts("GET", "/"), datetime.now(UTC)).allowed

    assert allowed(identity(orgs=[org("acme", "write")]))
    assert allowed(identity(orgs=[org("acme", "admin")]))
    assert not allowed(identity(orgs=[org("acme", "read")]))
    assert not allowed(identity(orgs=[org("other", "admin")]))


def test_start_sh_is_valid_shell_and_streamlit_listens_where_the_route_points() -> None:
    subprocess.run(["sh", "-n", str(EXAMPLE / "start.sh")], check=True)
    start = (EXAMPLE / "start.sh").read_text()
    assert "--server.address=127.0.0.1 --server.port=8501" in start
    assert start.rstrip().endswith("exec hf-gateway run")
    config = load_config(EXAMPLE / "gateway.yaml", environ=SPACE_ENV)
    assert config.routes[0].upstream == "http://127.0.0.1:8501"
