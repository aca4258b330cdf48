"""The documentation against the code: docs/cli.md names exactly the flags the commands
take, the README stays short enough to read, and no relative link points nowhere.

The parsers are the ones ``tui_gan.cli.main`` really uses: each command is run with
``parse_args`` replaced by a catch, so however the commands are registered, the test sees
the parser that would have parsed them (and no torch is imported: parsing comes first).
"""

from __future__ import annotations

import argparse
import re
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
CLI_DOC = ROOT / "docs" / "cli.md"
README_MAX_LINES = 250


# ----------------------------------------------------------------------------- the parsers


class _Caught(Exception):
    def __init__(self, parser: argparse.ArgumentParser) -> None:
        super().__init__(parser.prog)
        self.parser = parser


def _catch(self: argparse.ArgumentParser, *args: object, **kwargs: object) -> None:
    raise _Caught(self)


def parser_of(argv: list[str]) -> argparse.ArgumentParser:
    """The parser ``tui_gan.cli.main(argv)`` parses ``argv`` with (the first one it asks)."""
    from tui_gan.cli import main

    with mock.patch.object(argparse.ArgumentParser, "parse_args", _catch), \
            mock.patch.object(argparse.ArgumentParser, "parse_known_args", _catch):
        try:
            main(argv)
        except _Caught as caught:
            return caught.parser
    raise AssertionError(f"tui-gan {' '.join(argv)} parsed no arguments")


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return {name: sub for action in parser._actions if isinstance(action, argparse._SubParsersAction)
            for name, sub in action.choices.items()}


def command_names() -> list[str]:
    """The subcommands ``main`` dispatches: its table (``cli.COMMANDS``), and any argparse
    subparsers of the main parser."""
    from tui_gan.cli import COMMANDS

    return sorted(set(COMMANDS) | set(_subparsers(parser_of([]))))


def command_parsers() -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """(command, parser) for ``tui-gan`` itself (command "") and each subcommand."""
    yield "", parser_of([])
    for name in command_names():
        parser = parser_of([name])
        yield name, _subparsers(parser).get(name, parser)


def options(parser: argparse.ArgumentParser) -> set[str]:
    """Every option string a user may type (hidden ones and -h/--help left out)."""
    return {option for action in parser._actions
            if action.option_strings and action.help != argparse.SUPPRESS
            and not isinstance(action, argparse._HelpAction)
            for option in action.option_strings}


def positionals(parser: argparse.ArgumentParser) -> list[str]:
    return [action.metavar or action.dest for action in parser._actions
            if not action.option_strings and not isinstance(action, argparse._SubParsersAction)]


PARSERS = dict(command_parsers())


def title(command: str) -> str:
    return f"tui-gan {command}".strip()


# ----------------------------------------------------------------------------- docs/cli.md


def sections(text: str) -> dict[str, str]:
    """docs/cli.md's '## ' sections by their heading."""
    parts = re.split(r"^## +(.+?)\s*$", text, flags=re.M)
    return {heading.strip("`"): body for heading, body in zip(parts[1::2], parts[2::2])}


FLAG = re.compile(r"(?<![\w-])--?[A-Za-z][\w-]*")


def documented_flags(section: str) -> set[str]:
    """The flags the first column of a section's tables names (in code spans)."""
    flags = set()
    for line in section.splitlines():
        if not line.startswith("|") or re.fullmatch(r"[|\s:-]+", line):
            continue
        first_cell = re.split(r"(?<!\\)\|", line)[1]
        for code in re.findall(r"`([^`]*)`", first_cell):
            flags.update(FLAG.findall(code))
    return flags


CLI_SECTIONS = sections(CLI_DOC.read_text(encoding="utf-8"))


def test_cli_doc_has_one_section_per_command() -> None:
    commands = {title(command) for command in PARSERS}
    missing = sorted(commands - set(CLI_SECTIONS))
    assert not missing, f"docs/cli.md has no '## <command>' section for: {', '.join(missing)}"
    unknown = sorted(set(CLI_SECTIONS) - commands)
    assert not unknown, f"docs/cli.md has a section for commands tui-gan does not have: {', '.join(unknown)}"


@pytest.mark.parametrize("command", sorted(PARSERS), ids=title)
def test_cli_doc_lists_every_flag(command: str) -> None:
    section = CLI_SECTIONS.get(title(command), "")
    missing = sorted(options(PARSERS[command]) - documented_flags(section))
    assert not missing, f"docs/cli.md, '## {title(command)}': no table row for {', '.join(missing)}"
    for name in positionals(PARSERS[command]):
        assert name in section, f"docs/cli.md, '## {title(command)}': the argument {name} is not described"


@pytest.mark.parametrize("command", sorted(PARSERS), ids=title)
def test_cli_doc_names_only_real_flags(command: str) -> None:
    section = CLI_SECTIONS.get(title(command), "")
    unknown = sorted(documented_flags(section) - options(PARSERS[command]))
    assert not unknown, f"docs/cli.md, '## {title(command)}' names flags '{title(command)}' does not take: " \
                        f"{', '.join(unknown)}"


def test_documented_flags_reads_table_cells() -> None:
    section = "| flag | meaning |\n| --- | --- |\n| `--a N`, `--b-c F` | uses `--d` |\n| `--e 1\\|3` | x |\n"
    assert documented_flags(section) == {"--a", "--b-c", "--e"}


# ----------------------------------------------------------------------------- the README


def test_readme_is_short() -> None:
    lines = len(README.read_text(encoding="utf-8").splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; keep it to {README_MAX_LINES} (the rest: docs/)"


def test_readme_test_command_is_what_ci_runs() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    readme = README.read_text(encoding="utf-8")
    for command in ("python3 -m pip install -q -e '.[dev]'", "python3 -m pytest -q"):
        assert command in ci, f".ci/run no longer runs {command!r}: update this test and the README"
        assert command in readme, f"README.md's Setup should say {command!r}, as .ci/run runs it"


def test_readme_names_every_command() -> None:
    readme = README.read_text(encoding="utf-8")
    missing = [name for name in command_names() if f"tui-gan {name}" not in readme]
    assert not missing, f"README.md does not mention: {', '.join('tui-gan ' + name for name in missing)}"


# ----------------------------------------------------------------------------- links


PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def anchors(markdown: str) -> set[str]:
    """GitHub's anchors for a page's headings: lower case, punctuation dropped, spaces to
    '-', a repeated one suffixed -1, -2..."""
    seen: dict[str, int] = {}
    out = set()
    for heading in re.findall(r"^#{1,6} +(.+?)\s*#*\s*$", _without_code_blocks(markdown), flags=re.M):
        slug = "".join(ch for ch in heading.lower() if ch in " -_" or unicodedata.category(ch)[0] in "LN")
        slug = slug.replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        out.add(slug if count == 0 else f"{slug}-{count}")
    return out


def _without_code_blocks(markdown: str) -> str:
    return re.sub(r"^```.*?^```", "", markdown, flags=re.M | re.S)


def links(page: Path) -> Iterator[str]:
    text = re.sub(r"`[^`\n]*`", "", _without_code_blocks(page.read_text(encoding="utf-8")))
    for target in LINK.findall(text):
        if not re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            yield target


def test_anchors_follow_github() -> None:
    assert anchors("# A run outlives the terminal\n## GPU: `.ci/gpu-bench`\n## Data\n## Data\n") == {
        "a-run-outlives-the-terminal", "gpu-cigpu-bench", "data", "data-1"}


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for target in links(page):
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file.read_text(encoding="utf-8")):
            broken.append(f"{target} (no such heading in {file.relative_to(ROOT)})")
    assert not broken, f"{page.relative_to(ROOT)}: broken links: {'; '.join(broken)}"
