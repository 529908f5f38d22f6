"""Real nginx, Caddy and Traefik in front of a gateway, as the forward-auth guides
configure them.

The configurations are the guides' own snippet files (docs/deploy/snippets/), rendered by
replacing the example addresses they contain with this test's ports, so the tests run
exactly what docs/deploy/*.md shows. Each proxy runs as an ordinary process (as ``nobody``
when the tests run as root) on a free loopback port, with its configuration, pid file,
logs and temporary files in a folder of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import aiohttp

from gateway.devtools.fake_hf import FakeHF
from tests.support.harness import BROWSER

ROOT = Path(__file__).resolve().parent.parent.parent
SNIPPETS = ROOT / "docs" / "deploy" / "snippets"
START_TIMEOUT = 10.0

# The example addresses the snippets use, which the tests replace.
EXAMPLE_GATEWAY = "127.0.0.1:8080"
EXAMPLE_TOOL = "127.0.0.1:3000"
EXAMPLE_HOST = "tools.example.com"


def render(name: str, replacements: Mapping[str, str]) -> str:
    """A snippet file with each example value replaced (each must occur, so a guide that
    drops one fails here rather than testing something else)."""
    text = (SNIPPETS / name).read_text("utf-8")
    for old, new in replacements.items():
        if old not in text:
            raise AssertionError(f"{name} no longer contains {old!r}")
        text = text.replace(old, new)
    return text


def _program(name: str) -> str:
    beside_python = str(Path(sys.executable).parent / name)  # a binary from a dev package
    for candidate in (shutil.which(name), f"/usr/sbin/{name}", f"/usr/bin/{name}", beside_python):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError(f"{name} is missing: run scripts/ensure-system-deps.sh {name}")


def _unprivileged() -> tuple[int, int] | None:
    """The user a proxy runs as when the tests run as root (None: as ourselves)."""
    if os.geteuid() != 0:
        return None
    nobody = pwd.getpwnam("nobody")
    return nobody.pw_uid, nobody.pw_gid


class FrontProxy:
    """One proxy process serving ``http://127.0.0.1:{port}``."""

    name = "proxy"
    strips_session_cookie = True
    """Whether the guide's configuration keeps the gateway's cookie from the tool."""
    routes_after_listening = False

    def __init__(self, port: int) -> None:
        self.port = port
        self.folder = Path(tempfile.mkdtemp(prefix=f"hfgw-{self.name}-"))
        self.process: subprocess.Popen[bytes] | None = None
        self.log = self.folder / "output.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.folder)}

    async def start(self) -> None:
        account = _unprivileged()
        if account is not None:
            for path in (self.folder, *self.folder.rglob("*")):
                os.chown(path, *account)
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(  # noqa: S603 - a fixed system program
                self.command(),
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.environment(),
                cwd=self.folder,
                user=account[0] if account else None,
                group=account[1] if account else None,
                extra_groups=[] if account else None,
            )
        deadline = asyncio.get_running_loop().time() + START_TIMEOUT
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.output()}")
            if await self.ready():
                return
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(f"{self.name} did not listen: {self.output()}")
            await asyncio.sleep(0.05)

    async def ready(self) -> bool:
        """Listening, and (for proxies that load routes after binding) routing."""
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            return False
        writer.close()
        if not self.routes_after_listening:
            return True
        # The gateway is up already: its health page answers through the proxy once the
        # proxy has loaded the configuration.
        async with aiohttp.ClientSession() as http:
            try:
                async with http.get(f"{self.url}/_gateway/healthz") as response:
                    return response.status == 200
            except aiohttp.ClientError:
                return False

    def output(self) -> str:
        return self.log.read_text("utf-8", "replace")[-3000:] if self.log.exists() else ""

    async def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                await asyncio.to_thread(self.process.wait, 5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                await asyncio.to_thread(self.process.wait)
        self.process = None
        shutil.rmtree(self.folder, ignore_errors=True)


class Nginx(FrontProxy):
    """nginx with the guide's server block included into a minimal main configuration."""

    name = "nginx"

    def __init__(self, port: int, *, gateway_port: int, tool_port: int) -> None:
        super().__init__(port)
        site = render(
            "nginx.conf",
            {
                EXAMPLE_GATEWAY: f"127.0.0.1:{gateway_port}",
                EXAMPLE_TOOL: f"127.0.0.1:{tool_port}",
                "listen 80;": f"listen 127.0.0.1:{port};",
                EXAMPLE_HOST: "127.0.0.1",
            },
        )
        (self.folder / "site.conf").write_text(site)
        temp = self.folder / "temp"
        temp.mkdir()
        paths = "\n".join(
            f"    {kind}_temp_path {temp / kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        (self.folder / "nginx.conf").write_text(
            f"""worker_processes 1;
pid {self.folder / "nginx.pid"};
error_log {self.folder / "error.log"} info;
events {{ worker_connections 256; }}
http {{
    access_log {self.folder / "access.log"};
{paths}
    include {self.folder / "site.conf"};
}}
"""
        )

    def command(self) -> list[str]:
        conf = self.folder / "nginx.conf"
        return [
            _program("nginx"),
            "-p",
            str(self.folder),
            "-e",
            str(self.folder / "error.log"),
            "-c",
            str(conf),
            "-g",
            "daemon off;",
        ]

    def output(self) -> str:
        error_log = self.folder / "error.log"
        tail = error_log.read_text("utf-8", "replace")[-3000:] if error_log.exists() else ""
        return super().output() + tail


class Caddy(FrontProxy):
    """Caddy 2 with the guide's Caddyfile (global options for a test added in front)."""

    name = "caddy"

    def __init__(self, port: int, *, gateway_port: int, tool_port: int) -> None:
        super().__init__(port)
        site = render(
            "Caddyfile",
            {
                EXAMPLE_GATEWAY: f"127.0.0.1:{gateway_port}",
                EXAMPLE_TOOL: f"127.0.0.1:{tool_port}",
                f"{EXAMPLE_HOST} {{": f"http://127.0.0.1:{port} {{",
            },
        )
        # No admin endpoint, no certificates, nothing outside this folder.
        options = "{\n\tadmin off\n\tauto_https off\n}\n\n"
        (self.folder / "Caddyfile").write_text(options + site)

    def command(self) -> list[str]:
        return [
            _program("caddy"),
            "run",
            "--config",
            str(self.folder / "Caddyfile"),
            "--adapter",
            "caddyfile",
        ]

    def environment(self) -> dict[str, str]:
        return {
            **super().environment(),
            "XDG_CONFIG_HOME": str(self.folder / "config"),
            "XDG_DATA_HOME": str(self.folder / "data"),
        }


class Traefik(FrontProxy):
    """Traefik with the guide's static configuration and its dynamic one (file provider)."""

    name = "traefik"
    strips_session_cookie = False  # Traefik cannot remove one cookie (docs/deploy/traefik.md)
    routes_after_listening = True

    def __init__(self, port: int, *, gateway_port: int, tool_port: int) -> None:
        super().__init__(port)
        dynamic = render(
            "traefik-dynamic.yaml",
            {
                EXAMPLE_GATEWAY: f"127.0.0.1:{gateway_port}",
                EXAMPLE_TOOL: f"127.0.0.1:{tool_port}",
                f"Host(`{EXAMPLE_HOST}`)": "Host(`127.0.0.1`)",
            },
        )
        (self.folder / "dynamic.yml").write_text(dynamic)
        static = render(
            "traefik-static.yaml",
            {
                '":80"': f'"127.0.0.1:{port}"',
                "/etc/traefik/dynamic.yml": str(self.folder / "dynamic.yml"),
            },
        )
        # For the test only: no version check, no usage report, logs on standard output.
        extra = "global:\n  checkNewVersion: false\n  sendAnonymousUsage: false\n"
        (self.folder / "traefik.yml").write_text(static + extra + "log:\n  level: INFO\n")

    def command(self) -> list[str]:
        return [_program("traefik"), f"--configFile={self.folder / 'traefik.yml'}"]


@contextlib.asynccontextmanager
async def running(proxy: FrontProxy) -> AsyncIterator[FrontProxy]:
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()


_LOGIN_LINK = re.compile(r'href="([^"]*/_gateway/login\?[^"]*)"')


async def browser_sign_in(
    http: aiohttp.ClientSession, front: str, fake: FakeHF, username: str, target: str
) -> str:
    """Sign ``username`` in as a browser does, through the front proxy only: ask for
    ``target``, follow the 302 to the sign-in page, press its button (the fake provider
    approves), come back. Returns the sign-in URL the front proxy redirected to."""
    async with http.get(front + target, headers=BROWSER, allow_redirects=False) as response:
        await response.read()
        if response.status != 302:
            raise AssertionError(f"{target} answered {response.status}, not a sign-in redirect")
        sign_in = response.headers["Location"]
    if not sign_in.startswith(front + "/_gateway/sign_in?"):
        raise AssertionError(f"redirected to {sign_in}, not the sign-in page behind {front}")
    async with http.get(sign_in, headers=BROWSER) as response:
        page = await response.text()
        if response.status != 200:
            raise AssertionError(f"the sign-in page answered {response.status}")
    found = _LOGIN_LINK.search(page)
    if found is None:
        raise AssertionError("the sign-in page has no login button")
    fake.settings.auto_login = username
    async with http.get(html.unescape(found.group(1)), headers=BROWSER) as response:
        await response.read()
        if response.status != 200 or not str(response.url).startswith(front):
            raise AssertionError(f"login ended with {response.status} at {response.url}")
    return sign_in
