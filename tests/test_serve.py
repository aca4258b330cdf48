"""`tui-gan serve`: a real training service, a real `tui-gan serve` process, the page
fetched and a tab's websocket driven as textual-serve's page drives it; then serve stopped,
killed, and fed bad input. One service for the module (torch loads once)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tui_gan.browser.command import banner
from tui_gan.browser.server import BrowserServer, dimension
from tui_gan.cli import main
from tui_gan.commands.runstate import run_state
from tui_gan.core.rundir import RunDir
from tui_gan.service.runfiles import ServiceRecord, is_held

from .conftest import LONG, TINY, wait


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny run training in a service of its own, for the whole module."""
    runtime = os.environ.get("TUI_GAN_RUNTIME_DIR")
    os.environ["TUI_GAN_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="tg-")  # short: AF_UNIX paths
    run = RunDir(tmp_path_factory.mktemp("serve") / "run")
    service = subprocess.Popen([sys.executable, "-m", "tui_gan", *TINY, *LONG, "--headless", "--run-dir", str(run.root)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait(lambda: service.poll() is None and is_held(run) and ServiceRecord.read(run), 60, "the service")
        yield run
        assert service.poll() is None, "a browser tab or serve's end harmed the run"
    finally:
        service.kill()
        service.wait()
        if runtime is None:
            del os.environ["TUI_GAN_RUNTIME_DIR"]
        else:
            os.environ["TUI_GAN_RUNTIME_DIR"] = runtime


def metrics_rows(run: RunDir) -> int:
    return len(run.metrics.read_text().splitlines()) if run.metrics.exists() else 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Serve:
    """``tui-gan serve RUN --port P`` as a process, its output lines collected."""

    def __init__(self, run: RunDir) -> None:
        self.port = free_port()
        self.process = subprocess.Popen([sys.executable, "-m", "tui_gan", "serve", str(run.root), "--port", str(self.port)],
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        threading.Thread(target=lambda: self.lines.extend(self.process.stdout), daemon=True).start()
        first = wait(lambda: self.lines or self.process.poll() is not None, 15, "serve's first line") and self.lines
        assert first, f"serve exited with {self.process.returncode}"
        self.token = re.fullmatch(rf"serving {run.root} at http://127\.0\.0\.1:{self.port}/\?token=(\S+)\n",
                                  first[0]).group(1)
        self.url = f"http://127.0.0.1:{self.port}"

    def children(self) -> list[int]:
        """The processes serve started (one ``tui-gan attach`` per open tab)."""
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in path.read_text().split()] if path.exists() else []

    def output(self) -> str:
        return "".join(self.lines)


def gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] == "Z"  # a zombie is gone too
    except (FileNotFoundError, IndexError):
        return True


async def open_tab(serve: Serve, run: RunDir, session: aiohttp.ClientSession, host: str | None = None):
    """A tab as textual-serve's page opens one: the websocket the page names, its size in the
    query, a resize message; returns it once the app's screen (which names the run) arrives."""
    page = await session.get(f"{serve.url}/?token={serve.token}", headers={"Host": host} if host else None)
    url = re.search(r'data-session-websocket-url="([^"]+)"', await page.text()).group(1)
    if host:  # what the forward does: the browser's localhost:9999 is the server's port
        url = url.replace(host, f"127.0.0.1:{serve.port}")
    tab = await session.ws_connect(url + "?width=100&height=30")
    await tab.send_str(json.dumps(["resize", {"width": 100, "height": 30}]))
    screen = b""
    while run.root.name.encode() not in screen:
        message = await tab.receive(timeout=15)
        assert message.type == aiohttp.WSMsgType.BINARY, message
        screen += message.data
    return tab


async def closed(tab: aiohttp.ClientWebSocketResponse) -> int:
    """Read the tab until the server closes it; its close code."""
    while (await tab.receive(timeout=15)).type not in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
        pass
    return tab.close_code


def test_the_page_and_a_tab_and_serve_stopping_leave_the_run_training(run):
    serve = Serve(run)
    try:
        async def browse() -> None:
            async with aiohttp.ClientSession() as session:
                assert (await session.get(f"{serve.url}/")).status == 403
                assert (await session.get(f"{serve.url}/?token=wrong")).status == 403
                # through `ssh -L 9999:localhost:PORT` the page is asked for as localhost:9999: it
                # must send its websocket there, not to the server's own port
                page = await session.get(f"{serve.url}/?token={serve.token}", headers={"Host": "localhost:9999"})
                text = await page.text()
                assert page.status == 200 and f"tui-gan · {run.root.name}" in text
                assert f'data-session-websocket-url="ws://localhost:9999/ws/{serve.token}"' in text
                script = re.search(r'<script src="([^"]+)"', text).group(1)
                assert script.startswith("/static/") and (await session.get(serve.url + script)).status == 200
                with pytest.raises(aiohttp.WSServerHandshakeError):
                    await session.ws_connect(f"ws://127.0.0.1:{serve.port}/ws/wrong")

                tab = await open_tab(serve, run, session, host="localhost:9999")
                await tab.send_str(json.dumps(["ping", "42"]))
                while (message := await tab.receive(timeout=15)).type != aiohttp.WSMsgType.TEXT:
                    pass
                assert json.loads(message.data) == ["pong", "42"]
                (app,) = serve.children()
                serve.process.send_signal(signal.SIGINT)
                assert await closed(tab) == aiohttp.WSCloseCode.GOING_AWAY
                assert await asyncio.to_thread(serve.process.wait, 15) == 0
                assert gone(app)

        asyncio.run(browse())
        wait(lambda: "stopped serving" in serve.output(), 5, "serve's last line")
        assert "tab opened from 127.0.0.1 (1 open)" in serve.output() and "tab closed (0 open)" in serve.output()
        assert run_state(run)[0] == "running"
        rows = metrics_rows(run)
        wait(lambda: metrics_rows(run) > rows, 60, "the run to go on training")  # (or to start: torch loads)
    finally:
        serve.process.kill()


def test_a_tab_closes_when_its_app_leaves_and_apps_leave_a_killed_serve(run):
    serve = Serve(run)
    try:
        async def browse() -> None:
            async with aiohttp.ClientSession() as session:
                tab = await open_tab(serve, run, session)
                await tab.send_str(json.dumps(["stdin", "d"]))  # d: the app leaves, the run trains on
                assert await closed(tab) == aiohttp.WSCloseCode.OK
                await asyncio.to_thread(wait, lambda: "tab closed (0 open)" in serve.output(), 10, "the tab's end")
                assert serve.children() == []

                await open_tab(serve, run, session)
                (app,) = serve.children()
                serve.process.kill()  # no goodbye: the app sees its input end, and leaves
                await asyncio.to_thread(wait, lambda: gone(app), 10, "the orphaned app to leave")

        asyncio.run(browse())
        assert run_state(run)[0] == "running"
    finally:
        serve.process.kill()


def test_bad_input_is_one_line_before_anything_is_served(run, tmp_path, capsys, monkeypatch):
    for port in ("0", "65536", "http"):
        assert main(["serve", str(run.root), "--port", port]) == 2
        assert "--port: must be a port number (1-65535)" in capsys.readouterr().err

    not_running = tmp_path / "stopped"
    not_running.mkdir()
    (not_running / "config.toml").write_text("")
    for spec in (not_running, tmp_path / "nothing"):  # the errors attach gives
        assert main(["attach", str(spec)]) == 2
        expected = capsys.readouterr().err
        assert main(["serve", str(spec)]) == 2
        assert capsys.readouterr().err == expected and expected.count("\n") == 1

    with socket.create_server(("127.0.0.1", 0)) as taken:
        assert main(["serve", str(run.root), "--port", str(taken.getsockname()[1])]) == 2
        assert f"port {taken.getsockname()[1]} is in use" in capsys.readouterr().err
    assert main(["serve", str(run.root), "--host", "192.0.2.1"]) == 2  # TEST-NET: nobody's address
    assert "--host 192.0.2.1: not an address of this machine" in capsys.readouterr().err

    monkeypatch.setitem(sys.modules, "textual_serve", None)  # as if the extra were not installed
    monkeypatch.delitem(sys.modules, "tui_gan.browser.server")
    assert main(["serve", str(run.root)]) == 2
    err = capsys.readouterr().err
    assert "pip install 'tui-gan[serve]'" in err and err.count("\n") == 1


@contextlib.asynccontextmanager
async def served(server: BrowserServer):
    """``server`` on a free port of this process's loop; its base URL."""
    runner = web.AppRunner(server.application(), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_a_run_that_is_not_running_gets_its_reason_instead_of_an_app(tmp_path):
    run = RunDir(tmp_path / "stopped")
    run.root.mkdir()
    run.config.write_text("")
    reason = f"{run.root} is not running (stopped); continue it with: tui-gan --resume {run.root}"
    async with served(BrowserServer(run, "exit 1", "T", "title")) as address, aiohttp.ClientSession() as session:
        page = await session.get(f"http://{address}/?token=T")
        assert page.status == 410 and reason in await page.text()
        tab = await session.ws_connect(f"ws://{address}/ws/T")
        message = await tab.receive(timeout=5)
        assert message.data == f"\r\n  {reason}\r\n".encode()
        assert await closed(tab) == aiohttp.WSCloseCode.OK


async def test_a_tab_whose_app_fails_to_start_is_closed(run, capsys):
    server = BrowserServer(run, "echo 'tui-gan: error: no' >&2; exit 2", "T", "title")
    async with served(server) as address, aiohttp.ClientSession() as session:
        tab = await session.ws_connect(f"ws://{address}/ws/T")
        assert await closed(tab) == aiohttp.WSCloseCode.OK  # the page says "Session ended", not a blank screen
        await asyncio.wait_for(server.no_tabs.wait(), 10)
    assert "tui-gan: error: no" in capsys.readouterr().out


def test_the_banner_warns_when_others_can_reach_the_port(tmp_path):
    run = RunDir(tmp_path)
    with socket.create_server(("127.0.0.1", 0)) as local:
        port = local.getsockname()[1]
        lines = banner(run, local, "127.0.0.1", port, "T")
    assert lines[0] == f"serving {tmp_path} at http://127.0.0.1:{port}/?token=T"
    assert f"ssh -L {port}:localhost:{port} " in lines[1] and not any("warning" in line for line in lines)
    with socket.create_server(("0.0.0.0", 0)) as everywhere:
        port = everywhere.getsockname()[1]
        lines = banner(run, everywhere, "0.0.0.0", port, "T")
    assert lines[0] == f"serving {tmp_path} at http://{socket.gethostname()}:{port}/?token=T"
    assert lines[1].startswith("warning: listening on 0.0.0.0") and "ssh -L" not in "".join(lines)


def test_a_tab_size_is_a_number_of_cells_or_the_default():
    assert [dimension(v, 80) for v in ("120", 40, None, "x", 0, 5000)] == [120, 40, 80, 80, 80, 80]
