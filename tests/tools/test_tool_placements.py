"""Each tool guide (docs/tools/*.md), each placement, in Chromium through the gateway.

The tool is started with the guide's command line and files, the gateway with the guide's
route, on the public host the guides use; alice signs in and the tool must really work: its
UI renders and its live channel (queue, websocket, kernel, data API) answers through the
gateway, not just an HTML 200."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from tests.support.redis_server import free_port
from tests.tools.guides import PLACEMENTS, PUBLIC_HOST, Placement, placement
from tests.tools.tool_stack import chromium, gateway_in_front, run_tool, sign_in

Check = Callable[[Page, str], Awaitable[None]]
SLOW = 60_000  # ms: a tool's first page load compiles and fetches a lot on 2 shared cores


async def gradio_works(page: Page, base: str) -> None:
    """The click goes through Gradio's queue (POST, then its server-sent events)."""
    await page.get_by_role("button", name="who am I").click(timeout=SLOW)
    await expect(page.get_by_label("greeting")).to_have_value("hello alice", timeout=SLOW)


async def streamlit_works(page: Page, base: str) -> None:
    """The script's output arrives over Streamlit's websocket; a click re-runs it."""
    await expect(page.get_by_text("hello alice")).to_be_visible(timeout=SLOW)
    await page.get_by_role("button", name="count").click()
    await expect(page.get_by_text("clicks: 1")).to_be_visible(timeout=SLOW)


async def fetch_json(page: Page, url: str) -> object:
    """A same-origin fetch from the page, as the tool's own scripts make them."""
    text = await page.evaluate(
        "async (u) => { const r = await fetch(u); return `${r.status} ${await r.text()}`; }", url
    )
    status, _, body = str(text).partition(" ")
    assert status == "200", f"{url}: {text[:500]}"
    return json.loads(body)


async def jupyterlab_works(page: Page, base: str) -> None:
    """A notebook from the launcher runs code on a kernel (its websocket); the contents API
    then lists the notebook."""
    await page.locator('.jp-LauncherCard[data-category="Notebook"]').first.click(timeout=SLOW)
    editor = page.locator(".jp-Notebook .jp-Cell .cm-content").first
    await editor.click(timeout=SLOW)
    await editor.fill("print(6 * 7)")  # no keystroke lost while the notebook settles
    await expect(editor).to_have_text("print(6 * 7)")
    await editor.press("Shift+Enter")
    output = page.locator(".jp-OutputArea-output").first
    await expect(output).to_contain_text("42", timeout=SLOW)
    contents = await fetch_json(page, f"{base}api/contents")
    assert isinstance(contents, dict)
    assert "Untitled.ipynb" in [item["name"] for item in contents["content"]]


def write_tensorboard_run(workdir: Path) -> None:
    """A run ``demo`` with a ``loss`` scalar, written with TensorBoard's own event writer."""
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    writer = EventFileWriter(str(workdir / "runs" / "demo"))
    for step in range(5):
        value = Summary.Value(tag="loss", simple_value=1.0 / (step + 1))
        writer.add_event(Event(step=step, wall_time=1.7e9 + step, summary=Summary(value=[value])))
    writer.close()


async def tensorboard_works(page: Page, base: str) -> None:
    """The dashboard shows the run's chart; its data API answers through the gateway."""
    await expect(page.get_by_text("loss").first).to_be_visible(timeout=SLOW)
    tags = await fetch_json(page, f"{base}data/plugin/scalars/tags")
    assert isinstance(tags, dict) and "loss" in tags["demo"]


async def mlflow_works(page: Page, base: str) -> None:
    """The UI lists the experiment it fetched; the REST API answers through the gateway."""
    await expect(page.get_by_text("Default").first).to_be_visible(timeout=SLOW)
    found = await fetch_json(page, f"{base}api/2.0/mlflow/experiments/search?max_results=10")
    assert isinstance(found, dict)
    assert [e["name"] for e in found["experiments"]] == ["Default"]


CHECKS: dict[str, Check] = {
    "gradio": gradio_works,
    "streamlit": streamlit_works,
    "jupyterlab": jupyterlab_works,
    "tensorboard": tensorboard_works,
    "mlflow": mlflow_works,
}
PREPARE: dict[str, Callable[[Path], None]] = {"tensorboard": write_tensorboard_run}

CASES = [pytest.param(tool, where, id=f"{tool}-{where}") for tool in CHECKS for where in PLACEMENTS]


@pytest.mark.parametrize(("tool", "where"), CASES)
async def test_the_guide_works_in_chromium(tool: str, where: str, tmp_path: Path) -> None:
    spec = placement(tool, where)
    PREPARE.get(tool, lambda _: None)(tmp_path)
    gateway_port = free_port()
    async with (
        run_tool(spec, tmp_path, gateway_port) as running,
        gateway_in_front(spec, running, gateway_port) as url,
        chromium() as browser,
    ):
        page = await (await browser.new_context()).new_page()
        await sign_in(page, url, "alice")
        try:
            await CHECKS[tool](page, url)
        except Exception:
            await page.screenshot(path=tmp_path / "failed.png")
            print(page.url, running.log.read_text(errors="replace")[-4000:])
            raise


def without(spec: Placement, option: str) -> Placement:
    """The guide's command minus ``option`` (``--x=v``, or ``--x v``)."""
    argv, skip = [], False
    for arg in spec.argv:
        if skip or arg.startswith(f"{option}="):
            skip = False
            continue
        if arg == option:
            skip = True
            continue
        argv.append(arg)
    assert argv != spec.argv, f"{option} is not in the guide's command"
    return dataclasses.replace(spec, argv=argv)


def flipped(spec: Placement) -> Placement:
    route = {**spec.route, "strip_prefix": not spec.route.get("strip_prefix", False)}
    return dataclasses.replace(spec, route=route)


WRONG = [
    # The other strip_prefix than the guide's, with the tool's base-path setting: 404.
    pytest.param("streamlit", "sub", flipped, 404, id="streamlit-baseUrlPath-with-strip_prefix"),
    pytest.param("jupyterlab", "sub", flipped, 404, id="jupyterlab-base_url-with-strip_prefix"),
    pytest.param("tensorboard", "sub", flipped, 404, id="tensorboard-path_prefix-with-strip"),
    pytest.param("mlflow", "sub", flipped, 404, id="mlflow-static-prefix-with-strip_prefix"),
    # The Host checks: the public host refused.
    pytest.param(
        "jupyterlab",
        "root",
        lambda s: without(s, "--ServerApp.allow_remote_access"),
        403,
        id="jupyterlab-without-allow_remote_access",
    ),
    pytest.param(
        "mlflow", "root", lambda s: without(s, "--allowed-hosts"), 403, id="mlflow-without-hosts"
    ),
]


@pytest.mark.parametrize(("tool", "where", "change", "status"), WRONG)
async def test_without_the_guides_setting_the_tool_fails(
    tool: str, where: str, change: Callable[[Placement], Placement], status: int, tmp_path: Path
) -> None:
    """Twin of the working placements: one setting off the guide, and the signed-in user's
    page is the tool's error, which is why each guide names it."""
    spec = change(placement(tool, where))
    gateway_port = free_port()
    async with (
        run_tool(spec, tmp_path, gateway_port) as running,
        gateway_in_front(spec, running, gateway_port) as url,
        chromium() as browser,
    ):
        page = await (await browser.new_context()).new_page()
        await sign_in(page, url, "alice")
        response = await page.goto(url)
        assert response is not None
        assert response.status == status, await response.text()


async def test_gradio_6_also_takes_the_prefix_itself(tmp_path: Path) -> None:
    """Gradio 6 with root_path also serves a route that keeps the prefix (strip_prefix:
    false): the one tool for which both work (docs/tools/gradio.md)."""
    spec = flipped(placement("gradio", "sub"))
    gateway_port = free_port()
    async with (
        run_tool(spec, tmp_path, gateway_port) as running,
        gateway_in_front(spec, running, gateway_port) as url,
        chromium() as browser,
    ):
        page = await (await browser.new_context()).new_page()
        await sign_in(page, url, "alice")
        await gradio_works(page, url)


async def test_streamlits_websocket_needs_the_public_host(tmp_path: Path) -> None:
    """Twin of streamlit-root: with ``preserve_host: false`` Streamlit sees its own host, the
    browser's Origin names the public one, and the websocket is refused: the page's shell
    loads and the script's output never arrives (docs/tools/streamlit.md)."""
    spec = placement("streamlit", "root")
    spec = dataclasses.replace(spec, route={**spec.route, "preserve_host": False})
    gateway_port = free_port()
    async with (
        run_tool(spec, tmp_path, gateway_port) as running,
        gateway_in_front(spec, running, gateway_port) as url,
        chromium() as browser,
    ):
        page = await (await browser.new_context()).new_page()
        await sign_in(page, url, "alice")
        refused: asyncio.Queue[str] = asyncio.Queue()
        # Listening before the page opens it: the refusal can come before any later await.
        page.on("websocket", lambda ws: ws.on("socketerror", lambda _: refused.put_nowait(ws.url)))
        await page.reload()
        assert "/_stcore/stream" in await asyncio.wait_for(refused.get(), SLOW / 1000)
        await expect(page.get_by_text("hello alice")).to_have_count(0)


LOG_A_RUN = """
import socket
resolve = socket.getaddrinfo
# As Chromium's --host-resolver-rules: the public host is the gateway on loopback.
socket.getaddrinfo = lambda host, *a, **k: resolve(
    "127.0.0.1" if host == "tools.example.com" else host, *a, **k
)
import mlflow
with mlflow.start_run() as run:
    mlflow.log_metric("loss", 0.25)
print(mlflow.get_run(run.info.run_id).data.metrics["loss"])
"""


async def log_a_run(tracking_uri: str, **env: str) -> tuple[int, str]:
    """MLflow's own client, in a process of its own, logging a run through the gateway."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        LOG_A_RUN,
        env={**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    return process.returncode or 0, out.decode(errors="replace")


async def test_mlflows_client_logs_a_run_with_an_hf_token(tmp_path: Path) -> None:
    """MLFLOW_TRACKING_TOKEN goes out as Authorization: Bearer, which the gateway takes as an
    HF token (docs/tools/mlflow.md). Twin: without it, the gateway's 401 stops the client."""
    spec = placement("mlflow", "sub")
    gateway_port = free_port()
    async with (
        run_tool(spec, tmp_path, gateway_port) as running,
        gateway_in_front(spec, running, gateway_port),
    ):
        uri = f"http://{PUBLIC_HOST}:{gateway_port}/mlflow"
        status, out = await log_a_run(uri, MLFLOW_TRACKING_TOKEN="hf_alice_demo_read_token")
        assert (status, out.strip().splitlines()[-1]) == (0, "0.25"), out
        status, out = await log_a_run(uri, MLFLOW_HTTP_REQUEST_MAX_RETRIES="0")
        assert status != 0 and "sign in required" in out, out  # the gateway's 401 body
