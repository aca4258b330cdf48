"""``tui-gan serve [RUN_DIR] [--port P] [--host H]``: the flags, the run, the port, then the
server. Everything that can be wrong is found before serving, as one-line errors: a flag, a
missing ``serve`` extra, a run that is not running (the errors ``tui-gan attach`` gives), a
port in use or not ours to listen on."""

from __future__ import annotations

import argparse
import asyncio
import errno
import ipaddress
import secrets
import shlex
import socket
import sys

from ..commands.runstate import running_run
from ..core.errors import ArgumentParser, UserError
from ..core.rundir import DEFAULT_RUNS, RunDir

DEFAULT_PORT = 8000
EXTRA = "pip install 'tui-gan[serve]'"


def port_number(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number (1-65535), got {text!r}")
    return port


def serve_parser() -> ArgumentParser:
    p = ArgumentParser(prog="tui-gan serve", description=(
        "Serve the app on a running run to a web browser (Textual's textual-serve): each tab runs "
        "'tui-gan attach', as able to steer the run (pause, stop) as a terminal is. Needs the serve "
        f"extra: {EXTRA}"))
    p.add_argument("run_dir", nargs="?", metavar="RUN_DIR",
                   help=f"a running run's directory (default: the newest running run under {DEFAULT_RUNS}/)")
    p.add_argument("--port", type=port_number, default=DEFAULT_PORT, metavar="P",
                   help=f"the port to listen on (default {DEFAULT_PORT})")
    p.add_argument("--host", default="127.0.0.1", metavar="ADDRESS",
                   help="the address to listen on (default 127.0.0.1: this machine only, reached from elsewhere "
                        "through 'ssh -L'); any other lets whoever reaches the port and has the address steer the run")
    return p


def attach_command(run: RunDir) -> str:
    """The shell line that runs one tab's app (textual-serve starts it with a shell; ``exec``
    leaves no shell between the server and the app). Half blocks: xterm.js in the page
    shows neither kitty's images nor Sixel, and a probe there would only wait."""
    return "exec " + shlex.join([sys.executable, "-m", "tui_gan", "attach", str(run.root), "--graphics", "blocks"])


def run_serve(argv: list[str]) -> int:
    args = serve_parser().parse_args(argv)
    try:
        from .server import BrowserServer
    except ImportError as exc:
        if exc.name is None or exc.name.split(".")[0] not in ("textual_serve", "aiohttp", "jinja2"):
            raise  # our own code failed to import: a bug, not a missing extra
        raise UserError(f"tui-gan serve needs textual-serve ({exc.name} is not installed): {EXTRA}") from None
    run = running_run(args.run_dir)
    sock = listen(args.host, args.port)
    token = secrets.token_urlsafe(18)
    server = BrowserServer(run, attach_command(run), token, title=f"tui-gan · {run.root.name}")
    for line in banner(run, sock, args.host, args.port, token):
        print(line, flush=True)
    with sock:
        asyncio.run(server.serve(sock))
    print(f"stopped serving {run.root}", flush=True)
    return 0


def listen(host: str, port: int) -> socket.socket:
    """A socket listening on ``host``:``port`` (UserError: the port is taken, not ours to
    take, or the host is not an address of this machine)."""
    try:
        family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                      flags=socket.AI_PASSIVE)[0]
    except socket.gaierror:
        raise UserError(f"--host {host}: not a name or address this machine can listen on; "
                        "leave it out to listen on 127.0.0.1") from None
    try:
        return socket.create_server(address, family=family)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise UserError(f"port {port} is in use (another 'tui-gan serve'?); choose another with --port P") from None
        if exc.errno == errno.EACCES:
            raise UserError(f"port {port}: not allowed to listen on it (ports below 1024 need root); "
                            "choose another with --port P") from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise UserError(f"--host {host}: not an address of this machine; leave it out to listen on "
                            "127.0.0.1") from None
        raise UserError(f"cannot listen on {host} port {port}: {exc.strerror}") from None


def banner(run: RunDir, sock: socket.socket, host: str, port: int, token: str) -> list[str]:
    """What ``tui-gan serve`` says when it starts: where, how to get there, what it allows."""
    bound = ipaddress.ip_address(sock.getsockname()[0])
    if bound.is_unspecified:
        shown = socket.gethostname()
    else:
        shown = f"[{host}]" if ":" in host else host
    lines = [f"serving {run.root} at http://{shown}:{port}/?token={token}"]
    if bound.is_loopback:
        lines.append(f"from another machine: ssh -L {port}:localhost:{port} {socket.gethostname()}, "
                     f"then open http://localhost:{port}/?token={token}")
        lines.append("anyone with the address can steer the run (pause, stop); Ctrl+C stops serving, not the run")
    else:
        lines.append(f"warning: listening on {host}, not on this machine alone: whoever reaches port {port} and has "
                     "the address can pause or stop the run, and plain http shows the address to the network")
        lines.append("Ctrl+C stops serving, not the run")
    return lines
