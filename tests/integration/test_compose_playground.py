"""The compose playground, run here without a container engine: the same scripts, config
folder and environment compose would give each service, as local processes.

What differs from ``docker compose --env-file playground.env up`` (and only this): the
hosts ``redis`` and ``tool`` become 127.0.0.1 ports, the fixed ports 8080/9000 become free
ones (the listen line of the copied config is rewritten to match), and nothing is in a
container. The shared network namespace that lets browser and gateway use one issuer URL
is checked structurally in tests/unit/test_deploy_artifacts.py.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import yaml

from tests.support.deploy_examples import (
    COMPOSE_DIR,
    load_compose,
    read_env_file,
    service_environment,
)
from tests.support.harness import API, BROWSER
from tests.support.redis_server import RedisServer, free_port

GATEWAY_SECRET = "compose-playground-test-secret-" + "q" * 20


def playground_environment() -> dict[str, str]:
    """What the shell and ``--env-file playground.env`` give compose."""
    return {**read_env_file(COMPOSE_DIR / "playground.env"), "GATEWAY_SECRET": GATEWAY_SECRET}


@contextmanager
def service(argv: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        process = subprocess.Popen(
            argv, env={"PATH": os.environ["PATH"], **env}, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        yield process
    finally:
        process.terminate()
        process.wait(timeout=15)


async def wait_for(url: str, log: Path, status: int = 200, within: float = 15.0) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(int(within / 0.1)):
            try:
                async with http.get(url) as response:
                    if response.status == status:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"{url} never answered {status}:\n{log.read_text(errors='replace')}")


@asynccontextmanager
async def playground(tmp_path: Path, redis: RedisServer) -> AsyncIterator[str]:
    """Tool, gateway, then the fake provider (compose's start order); yields the URL."""
    compose = load_compose()
    environ = playground_environment()
    gateway_port, fake_port, tool_port = free_port(), free_port(), free_port()
    local = {
        "PUBLIC_URL": f"http://localhost:{gateway_port}",
        "HF_ISSUER": f"http://localhost:{fake_port}",
    }
    gateway_env = service_environment(compose, "gateway", {**environ, **local})
    fake_env = service_environment(compose, "fake-hf", {**environ, **local})
    tool_env = service_environment(compose, "tool", environ)

    config_dir = tmp_path / "etc-hf-gateway"
    shutil.copytree(COMPOSE_DIR / "config", config_dir)
    config_file = config_dir / "gateway.yaml"
    config = yaml.safe_load(config_file.read_text())
    assert config["server"]["listen"] == "0.0.0.0:8080"
    config["server"]["listen"] = f"127.0.0.1:{gateway_port}"
    config["server"]["metrics_listen"] = None
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    gateway_env.update(
        HF_GATEWAY_CONFIG=str(config_file),
        REDIS_URL=redis.url,
        TOOL_URL=f"http://127.0.0.1:{tool_port}",
    )
    tool_env.update(TOOL_HOST="127.0.0.1", TOOL_PORT=str(tool_port))
    fake_env.update(FAKE_HF_HOST="127.0.0.1", FAKE_HF_PORT=str(fake_port))

    playground_dir = COMPOSE_DIR / "playground"
    tool_log, gateway_log, fake_log = (tmp_path / f"{n}.log" for n in ("tool", "gw", "fake"))
    with (
        service([sys.executable, str(playground_dir / "tool.py")], tool_env, tool_log),
        service([sys.executable, "-m", "gateway", "run"], gateway_env, gateway_log),
    ):
        url = f"http://localhost:{gateway_port}"
        await wait_for(f"http://127.0.0.1:{tool_port}/api/echo", tool_log)
        await wait_for(f"{url}/_gateway/healthz", gateway_log)
        with service([sys.executable, str(playground_dir / "fake_hf.py")], fake_env, fake_log):
            await wait_for(f"{url}/_gateway/readyz", gateway_log)
            yield url


async def sign_in(http: aiohttp.ClientSession, url: str, username: str) -> int:
    """As a person would: the gateway sends the browser to the fake's sign-in page, the
    person picks an account and presses Sign in, the callback sets the session and sends
    the browser back to ``/``; the status of that page is returned."""
    async with http.get(
        f"{url}/_gateway/login", params={"rd": "/"}, headers=BROWSER, allow_redirects=False
    ) as answer:
        assert answer.status in (302, 303), await answer.text()
        authorize = answer.headers["Location"]
    parts = urlsplit(authorize)
    async with http.get(authorize, headers=BROWSER) as page:
        assert page.status == 200
        assert "Sign in" in await page.text()
    form = dict(parse_qsl(parts.query)) | {"action": "login", "username": username}
    async with http.post(authorize.split("?")[0], data=form, headers=BROWSER) as landed:
        assert str(landed.url) == f"{url}/"
        return landed.status


async def whoami(http: aiohttp.ClientSession, url: str, path: str) -> tuple[int, str]:
    async with http.get(f"{url}{path}", headers=API) as answer:
        if answer.status != 200:
            return answer.status, ""
        echoed = await answer.json()
        users = [value for name, value in echoed["headers"] if name.lower() == "x-forwarded-user"]
        return 200, ",".join(users)


async def test_the_compose_playground_signs_people_in_and_applies_its_policies(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """alice (acme admin) reaches everything, bob (acme read) the tool but not /writers,
    carol (acme pending SSO: it does not count) and dave (no org) nothing but the public
    path; an anonymous API client gets 401."""
    async with playground(tmp_path, redis_server) as url:
        async with aiohttp.ClientSession() as anonymous:
            assert (await whoami(anonymous, url, "/api/echo"))[0] == 401
            async with anonymous.get(f"{url}/public/", headers=BROWSER) as public:
                assert public.status == 200  # the echo tool's page, no sign-in
                assert "<th>X-Forwarded-User</th><td><code></code>" in await public.text()
        expected = {
            "alice": {"/api/echo": 200, "/writers/api/echo": 200, "/admin/api/echo": 200},
            "bob": {"/api/echo": 200, "/writers/api/echo": 403, "/admin/api/echo": 403},
            "carol": {"/api/echo": 403, "/writers/api/echo": 403, "/admin/api/echo": 403},
            "dave": {"/api/echo": 403, "/writers/api/echo": 403, "/admin/api/echo": 403},
        }
        for username, paths in expected.items():
            jar = aiohttp.CookieJar(unsafe=True)
            async with aiohttp.ClientSession(cookie_jar=jar) as http:
                assert await sign_in(http, url, username) == paths["/api/echo"]
                for path, status in paths.items():
                    seen = await whoami(http, url, path)
                    assert seen == (status, username if status == 200 else ""), (username, path)
