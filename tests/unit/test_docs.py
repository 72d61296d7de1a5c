"""The README and docs/configuration.md run as written, from the repository root, against config/example.yaml.

Every ```yaml block that is a config or part of one loads without errors: a block with top-level
sections (``fields:``, ``automations:``...) alone, or else merged into the example config (a
fragment may use the example's fields, emails and operations); a list of steps, or ``goals:`` and
the like, inside an automation of the example config. Every ``./memberflow ...`` and
``python -m chalicelib.cli ...`` command shown, in a shell block or inline, exits 0 when run
in-process with ``FILE`` read as config/example.yaml; a console block's shown output matches (a
config version counts as any version). No Markdown link in any *.md of the repository points
outside it, and relative links resolve to existing files and headings.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from chalicelib.config.loader import ConfigError, parse_config, read_yaml
from chalicelib.config.model import MemberflowConfig
from chalicelib.devtools.cli import main

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config" / "example.yaml"
DOCS = (REPO / "README.md", REPO / "docs" / "configuration.md")

FENCE = re.compile(
    r"^(?P<indent>[ \t]*)```(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.M | re.S
)
INLINE_CODE = re.compile(r"(`+)(?P<code>.+?)\1")
SHELL = {"bash", "sh", "shell", "console"}
CLI_PREFIXES = (
    ("./memberflow",),
    ("python", "-m", "chalicelib.cli"),
    (".venv/bin/python", "-m", "chalicelib.cli"),
)
PLACEHOLDERS = {"FILE": "config/example.yaml"}
VERSION = re.compile(r"\b[0-9a-f]{12}\b")
AUTOMATION_KEYS = {"trigger", "steps", "goals", "cancel_on", "reentry", "status", "time_zone", "name"}


@dataclass(frozen=True)
class Block:
    path: Path
    line: int
    lang: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"


def blocks(path: Path) -> Iterator[Block]:
    source = path.read_text(encoding="utf-8")
    for match in FENCE.finditer(source):
        indent = len(match["indent"])
        body = "".join(line[indent:] for line in match["body"].splitlines(keepends=True))
        yield Block(path, source.count("\n", 0, match.start()) + 1, match["lang"], body)


def prose(source: str) -> str:
    """The Markdown without its fenced blocks (kept as blank lines, so line numbers stay)."""
    return FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), source)


def markdown_files() -> list[Path]:
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.md"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        return sorted(p for p in REPO.rglob("*.md") if not any(part.startswith(".") for part in p.parts))
    return sorted(REPO / name for name in listed if (REPO / name).exists())


# --- YAML -------------------------------------------------------------------------------------


def yaml_blocks() -> list[Block]:
    return [block for path in DOCS for block in blocks(path) if block.lang == "yaml"]


def merged(base: Any, fragment: Any) -> Any:
    if isinstance(base, dict) and isinstance(fragment, dict):
        return {**base, **{key: merged(base.get(key), value) for key, value in fragment.items()}}
    return fragment


def as_config_fragment(data: Any) -> dict[str, Any]:
    """Top-level sections as they are; steps and automation keys inside an automation."""
    wrapper = {"trigger": {"tag_added": "Purchase – Foundation"}, "steps": [{"send_email": "welcome"}]}
    if isinstance(data, list):
        return {"automations": {"docs-example": {**wrapper, "steps": data}}}
    assert isinstance(data, dict), f"not a config, a list of steps or automation keys: {data!r}"
    if set(data) <= set(MemberflowConfig.model_fields):
        return data
    assert set(data) <= AUTOMATION_KEYS, f"neither config sections nor automation keys: {sorted(data)}"
    return {"automations": {"docs-example": {**wrapper, **data}}}


def load_fragment(block: Block) -> None:
    """Raises ``ConfigError`` with the problems of the block merged into the example config."""
    data = read_yaml("fragment:\n" + "".join(f"  {line}" for line in block.text.splitlines(True)))
    fragment = data["fragment"]
    if fragment is None:
        return  # only comments, such as the schema modeline
    fragment = as_config_fragment(fragment)
    try:
        parse_config(json.dumps(fragment, ensure_ascii=False))
        return
    except ConfigError:
        pass  # a fragment may lean on the example's fields, emails and operations
    example = read_yaml(EXAMPLE.read_text(encoding="utf-8"))
    parse_config(json.dumps(merged(example, fragment), ensure_ascii=False))


class TestYamlExamples:
    def test_the_docs_have_yaml_examples(self) -> None:
        assert {block.path.name for block in yaml_blocks()} == {"README.md", "configuration.md"}

    @pytest.mark.parametrize("block", yaml_blocks(), ids=lambda block: block.where)
    def test_every_yaml_block_is_a_valid_config_or_fragment(self, block: Block) -> None:
        try:
            load_fragment(block)
        except ConfigError as problem:
            pytest.fail(f"{block.where}: the example does not load:\n" + "\n".join(problem.errors))


# --- commands ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    where: str
    argv: tuple[str, ...]
    output: tuple[str, ...] | None = None
    """What a console block shows the command printing, if anything."""


def cli_argv(text: str) -> tuple[str, ...] | None:
    if not text.lstrip().startswith(tuple(" ".join(prefix) for prefix in CLI_PREFIXES)):
        return None
    words = shlex.split(text, comments=True)
    for prefix in CLI_PREFIXES:
        if tuple(words[: len(prefix)]) == prefix:
            return tuple(PLACEHOLDERS.get(word, word) for word in words[len(prefix) :])
    return None


def shell_commands(block: Block) -> Iterator[Command]:
    lines = block.text.replace("\\\n", " ").splitlines()
    console = block.lang == "console"
    for index, line in enumerate(lines):
        if console and not line.startswith("$ "):
            continue
        argv = cli_argv(line.removeprefix("$ ") if console else line)
        if argv is None:
            continue
        output = None
        if console:
            shown = []
            for after in lines[index + 1 :]:
                if after.startswith("$ "):
                    break
                shown.append(after)
            output = tuple(shown) if any(shown) else None
        yield Command(f"{block.where}+{index}", argv, output)


def documented_commands() -> list[Command]:
    commands: list[Command] = []
    for path in DOCS:
        commands += [c for block in blocks(path) if block.lang in SHELL for c in shell_commands(block)]
        text = prose(path.read_text(encoding="utf-8"))
        for match in INLINE_CODE.finditer(text):
            argv = cli_argv(match["code"])
            if argv is not None:
                line = text.count("\n", 0, match.start()) + 1
                commands.append(Command(f"{path.relative_to(REPO)}:{line}", argv))
    return commands


class TestCommands:
    def test_the_docs_show_the_cli(self) -> None:
        shown = {command.argv[:2] for command in documented_commands()}
        assert {("config", "check"), ("config", "schema"), ("simulate", "--config")} <= shown

    @pytest.mark.parametrize("command", documented_commands(), ids=lambda command: command.where)
    def test_every_command_runs_from_the_repo_root(
        self,
        command: Command,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        argv = list(command.argv)
        if "--output" in argv:
            # The command works as shown; the test writes elsewhere so it never rewrites a tracked file.
            argv[argv.index("--output") + 1] = str(tmp_path / Path(argv[argv.index("--output") + 1]).name)
        monkeypatch.chdir(REPO)
        code = main(argv)
        captured = capsys.readouterr()
        assert code == 0, f"{command.where}: {shlex.join(command.argv)}\n{captured.err}"
        if command.output is not None:
            printed = VERSION.sub("<version>", captured.out).splitlines()
            assert printed == [VERSION.sub("<version>", line) for line in command.output]


# --- links ------------------------------------------------------------------------------------

LINK = re.compile(r"(?<!\!)\[(?:[^\]\[]|\[[^\]]*\])*\]\((?P<target><[^>]*>|[^)\s]*)(?:\s+\"[^\"]*\")?\)")
REFERENCE = re.compile(r"^[ \t]{0,3}\[[^\]]+\]:[ \t]*(?P<target>\S+)", re.M)
RELATIVE_MENTION = re.compile(r"(?<![\w./-])(?P<target>\.\./[\w./-]+)")
HEADING = re.compile(r"^#{1,6}[ \t]+(?P<text>.+?)[ \t]*#*[ \t]*$", re.M)
EXTERNAL = ("http://", "https://", "mailto:")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {slug(match["text"]) for match in HEADING.finditer(prose(path.read_text(encoding="utf-8")))}


def links(path: Path) -> Iterator[tuple[int, str]]:
    text = INLINE_CODE.sub(lambda m: " " * len(m.group(0)), prose(path.read_text(encoding="utf-8")))
    for pattern in (LINK, REFERENCE):
        for match in pattern.finditer(text):
            yield text.count("\n", 0, match.start()) + 1, match["target"].strip("<>")


def link_problem(path: Path, target: str) -> str | None:
    if target.startswith(EXTERNAL):
        return None
    if target.startswith(("/", "file:", "~")) or re.match(r"^[A-Za-z]:[\\/]", target):
        return "an absolute path; link to a file of the repository with a relative path"
    if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):
        return "an unknown scheme; use a relative path or an http(s) link"
    file_part, _, anchor = target.partition("#")
    resolved = (path.parent / file_part).resolve() if file_part else path
    if not resolved.is_relative_to(REPO):
        return "outside the repository; say it in the project's own words or link to a file in it"
    if not resolved.exists():
        return "no such file"
    if anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
        return f"no heading #{anchor} in {resolved.relative_to(REPO)}"
    return None


class TestLinks:
    def test_the_markdown_files_are_found(self) -> None:
        assert {REPO / "README.md", *DOCS} <= set(markdown_files())

    @pytest.mark.parametrize("path", markdown_files(), ids=lambda path: str(path.relative_to(REPO)))
    def test_every_link_stays_inside_the_repository_and_resolves(self, path: Path) -> None:
        problems = [
            f"{path.relative_to(REPO)}:{line}: {target}: {problem}"
            for line, target in links(path)
            if (problem := link_problem(path, target)) is not None
        ]
        assert problems == []

    @pytest.mark.parametrize("path", markdown_files(), ids=lambda path: str(path.relative_to(REPO)))
    def test_no_relative_path_outside_the_repository_is_mentioned(self, path: Path) -> None:
        text = path.read_text(encoding="utf-8")
        outside = [
            f"{path.relative_to(REPO)}:{text.count(chr(10), 0, match.start()) + 1}: {match['target']}"
            for match in RELATIVE_MENTION.finditer(text)
            if not (path.parent / match["target"]).resolve().is_relative_to(REPO)
        ]
        assert outside == []

    @pytest.mark.parametrize(
        ("heading", "anchor"),
        [
            ("Trigger tags: the one rule to remember", "trigger-tags-the-one-rule-to-remember"),
            ("Waiting: `delay` and `wait_until`", "waiting-delay-and-wait_until"),
            ("Editor support (JSON Schema)", "editor-support-json-schema"),
            ("`test_contacts`", "test_contacts"),
        ],
    )
    def test_anchors_follow_github(self, heading: str, anchor: str) -> None:
        assert slug(heading) == anchor
