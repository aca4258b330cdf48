"""The web server behind ``tui-gan serve``: the page, and one ``tui-gan attach`` per tab.

It is built from textual-serve's parts: ``AppService`` starts the app with Textual's web
driver and relays its screen to xterm.js over a websocket; its page and its xterm.js bundle
are served as they are. We do not use its ``Server`` class, because for this use it
- writes the page's websocket address from its own host and port, so a tab opened through
  ``ssh -L 9000:localhost:8000`` would call port 9000's neighbour 8000 on the laptop: here
  the address follows the Host the browser asked for;
- lets anyone who reaches the port in, when the service's socket otherwise talks only to
  its owner's processes, and any web page the browser visits may open a websocket to
  localhost: here the page and the websocket need the token the command printed;
- leaves a tab open on a blank screen when its app exits (a run that is no longer
  running), and waits up to a minute for open tabs at Ctrl+C;
- prints a banner and rich logs: here a few plain lines.
"""

from __future__ import annotations

import asyncio
import hmac
import html
import json
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2
import textual_serve
from aiohttp import WSCloseCode, WSMsgType, web
from textual_serve.app_service import AppService
from textual_serve.download_manager import DownloadManager

from ..commands.runstate import not_running_error, run_state
from ..core.rundir import RunDir

PACKAGE = Path(textual_serve.__file__).parent
STOP_GRACE_S = 5.0
"""How long a tab's app has to exit after it is asked to (then it is killed)."""
STOP_SIGNALS = [signal.SIGINT, signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])


class AttachedApp(AppService):
    """One tab's ``tui-gan attach``: textual-serve's bridge, and the tab is closed when the
    app exits, however it exits (``d``, ``q``, or an error before its first frame), so
    the page says "Session ended" and its Restart button reloads the page; and the app
    leaves if this server dies without closing it (tui/served.py)."""

    def _build_environment(self, width: int = 80, height: int = 24) -> dict[str, str]:
        environment = super()._build_environment(width, height)  # (pinned to textual-serve 1.x)
        environment["TEXTUAL_DRIVER"] = "tui_gan.tui.served:ServedDriver"
        return environment

    async def run(self) -> None:
        try:
            try:
                await super().run()
            except asyncio.CancelledError:
                stdout = self._process.stdout if self._process is not None else None
                if stdout is None or not stdout.at_eof():
                    raise  # this tab is being cancelled
                # textual-serve cancels its stderr reader as the app's output ends, then awaits
                # it: when the app ended before that reader ever ran, the await raises this
            await self._print_unread_stderr()
        finally:
            await self.remote_close()

    async def _print_unread_stderr(self) -> None:
        """What the app wrote to stderr that textual-serve had not read when it stopped
        reading (it cancels its reader as the app's output ends): an app that failed to
        start says why, as textual-serve prints what it read, on this process's stdout."""
        stderr = self._process.stderr if self._process is not None else None
        if stderr is None:
            return
        try:
            unread = await asyncio.wait_for(stderr.read(), 1.0)
        except asyncio.TimeoutError:
            return  # the app is still going (it closed its output but not its stderr)
        if unread:
            sys.stdout.write(unread.decode("utf-8", "replace"))
            sys.stdout.flush()

    async def on_data(self, payload: bytes) -> None:
        try:
            await super().on_data(payload)
        except ConnectionError:
            # The tab has closed and the app not exited yet: keep reading its output (or it
            # would block on a full pipe while it exits), and drop it.
            pass

    async def stop_within(self, seconds: float) -> None:
        """Ask the app to quit and wait for its process to end; kill it if it has not
        within ``seconds``."""
        process = self._process  # textual-serve keeps it there (pinned to textual-serve 1.x)
        try:
            await asyncio.wait_for(asyncio.shield(self._stop_and_wait()), seconds)
        except asyncio.TimeoutError:
            if process is not None and process.returncode is None:
                process.kill()

    async def _stop_and_wait(self) -> None:
        await self.stop()  # returns once the app's output ends
        if self._process is not None:
            await self._process.wait()


class BrowserServer:
    """Serves ``run`` to browsers: the page at ``/?token=T``, each tab's app on the
    websocket ``/ws/T``; ``command`` (a shell line) starts one tab's app."""

    def __init__(self, run: RunDir, command: str, token: str, title: str,
                 echo: Callable[[str], None] = print) -> None:
        self.run = run
        self.command = command
        self.token = token
        self.title = title
        self.echo = echo
        self.tabs: set[web.WebSocketResponse] = set()
        self.no_tabs = asyncio.Event()
        self.downloads = DownloadManager()
        pages = jinja2.Environment(loader=jinja2.FileSystemLoader(PACKAGE / "templates"), autoescape=True)
        self.page = pages.get_template("app_index.html")

    def application(self) -> web.Application:
        app = web.Application()
        app.add_routes([
            web.get("/", self.index),
            web.get("/ws/{token}", self.websocket),
            web.get("/download/{key}", self.download),  # the app's files (a screenshot): their keys are secret
            web.static("/static", PACKAGE / "static"),
        ])
        return app

    def token_ok(self, given: str) -> bool:
        return hmac.compare_digest(given.encode(), self.token.encode())

    def why_not_running(self) -> str | None:
        state, record = run_state(self.run)
        return None if state == "running" else str(not_running_error(self.run, state, record))

    # ----------------------------------------------------------------- the page

    async def index(self, request: web.Request) -> web.Response:
        if not self.token_ok(request.query.get("token", "")):
            return web.Response(status=403, text="tui-gan serve: this page needs the full address "
                                "'tui-gan serve' printed, with its ?token=... part\n")
        reason = self.why_not_running()
        if reason is not None:
            return web.Response(status=410, text=message_page(self.title, reason), content_type="text/html")
        font_size = request.query.get("fontsize", "16")
        return web.Response(content_type="text/html", text=self.page.render(
            font_size=int(font_size) if font_size.isdigit() and 6 <= int(font_size) <= 64 else 16,
            app_websocket_url=self.websocket_url(request),
            config={"static": {"url": "/static/"}},  # from the page's own origin, whatever port it came through
            application={"name": self.title},
            ping_url="",
        ))

    def websocket_url(self, request: web.Request) -> str:
        """The address the browser reaches us by (the Host it sent: through ``ssh -L``,
        the laptop's port), in the scheme of the page (https behind a proxy that says so)."""
        scheme = request.headers.get("X-Forwarded-Proto", request.scheme)
        return f"{'wss' if scheme == 'https' else 'ws'}://{request.host}/ws/{self.token}"

    async def download(self, request: web.Request) -> web.StreamResponse:
        """A file the app delivers to the browser, streamed as textual-serve does."""
        try:
            meta = await self.downloads.get_download_metadata(request.match_info["key"])
        except KeyError:
            raise web.HTTPNotFound(text="no such download") from None
        response = web.StreamResponse()
        charset = f"; charset={meta.encoding}" if meta.encoding else ""
        response.headers["Content-Type"] = meta.mime_type + charset
        disposition = "inline" if meta.open_method == "browser" else "attachment"
        response.headers["Content-Disposition"] = f"{disposition}; filename={meta.file_name}"
        await response.prepare(request)
        async for chunk in self.downloads.download(request.match_info["key"]):
            await response.write(chunk)
        await response.write_eof()
        return response

    # ----------------------------------------------------------------- a tab

    async def websocket(self, request: web.Request) -> web.WebSocketResponse | web.Response:
        if not self.token_ok(request.match_info["token"]):
            return web.Response(status=403, text="tui-gan serve: wrong token\n")
        tab = web.WebSocketResponse(heartbeat=15)
        await tab.prepare(request)
        reason = self.why_not_running()
        if reason is not None:  # shown in the tab's terminal, then "Session ended"
            await tab.send_bytes(f"\r\n  {reason}\r\n".encode())
            await tab.close()
            return tab
        app = AttachedApp(self.command, write_bytes=tab.send_bytes, write_str=tab.send_str, close=tab.close,
                          download_manager=self.downloads)
        self.tabs.add(tab)
        self.no_tabs.clear()
        self.echo(f"tab opened from {request.remote} ({len(self.tabs)} open)")
        try:
            await app.start(dimension(request.query.get("width"), 80), dimension(request.query.get("height"), 24))
            await relay(tab, app)
        finally:
            await app.stop_within(STOP_GRACE_S)
            self.tabs.discard(tab)
            if not self.tabs:
                self.no_tabs.set()
            self.echo(f"tab closed ({len(self.tabs)} open)")
        return tab

    # ----------------------------------------------------------------- serving

    async def serve(self, sock: socket.socket) -> None:
        """Serve on the listening ``sock`` until SIGINT, SIGTERM or SIGHUP; then close
        every tab, let each app quit (or kill it) and return."""
        runner = web.AppRunner(self.application(), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, stopping.set)
        try:
            await stopping.wait()
            tabs = list(self.tabs)
            if tabs:
                self.echo(f"closing {len(tabs)} tab{'s' if len(tabs) > 1 else ''}")
                closing = [tab.close(code=WSCloseCode.GOING_AWAY, message=b"tui-gan serve stopped") for tab in tabs]
                await asyncio.wait_for(asyncio.gather(*closing, return_exceptions=True), STOP_GRACE_S)
                await asyncio.wait_for(self.no_tabs.wait(), STOP_GRACE_S + 1.0)
        except asyncio.TimeoutError:
            pass  # a tab that would not close: the runner's cleanup cancels it
        finally:
            for sig in STOP_SIGNALS:
                loop.remove_signal_handler(sig)
            await runner.cleanup()


async def relay(tab: web.WebSocketResponse, app: AttachedApp) -> None:
    """The page's messages to the app, until the tab closes. The page sends JSON pairs:
    ["stdin", text], ["resize", {"width": W, "height": H}], ["ping", t], ["blur"|"focus", …];
    anything else is ignored."""
    async for message in tab:
        if message.type != WSMsgType.TEXT:
            continue
        try:
            kind, data = json.loads(message.data)
        except (ValueError, TypeError):  # not a [kind, data] pair: not from textual-serve's page
            continue
        if kind == "stdin" and isinstance(data, str):
            await app.send_bytes(data.encode("utf-8"))
        elif kind == "resize" and isinstance(data, dict):
            width, height = dimension(data.get("width"), 0), dimension(data.get("height"), 0)
            if width and height:
                await app.set_terminal_size(width, height)
        elif kind == "ping":
            await tab.send_json(["pong", data])
        elif kind == "blur":
            await app.blur()
        elif kind == "focus":
            await app.focus()


def dimension(value: Any, default: int) -> int:
    """A terminal's columns or rows as the page sends them (a number, or its text), within
    1-1000; ``default`` for anything else."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        return default
    return number if 1 <= number <= 1000 else default


def message_page(title: str, message: str) -> str:
    """A plain page that says why there is no app to show."""
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)}</title></head>"
            "<body style='background:#0c181f;color:#e0e0e0;font-family:monospace;padding:2em'>"
            f"<p>{html.escape(message)}</p></body></html>\n")
