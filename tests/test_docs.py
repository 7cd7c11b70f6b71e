"""Every code block of README.md and docs/*.md runs and prints what it shows; every relative link
points at something that exists; the README's commands, the guide's synopsis and the install line
agree with the CLI and .ci/run.

How a page marks its blocks (docs/design.md, "Keeping the docs true", says the same for writers):

- ```python  runs (exec in an empty temporary folder); a ```text block right after it is what it
             prints. A python block with no ```text block after it must print nothing.
- ```console `$ fastmlp ...` lines run through fastmlp.cli.main in an empty temporary folder, must
             exit 0, and the lines under each `$` line are its standard output (progress and notes
             go to standard error and are not shown). A command ending in `\\` continues on the next line.
- anything else, or a block that cannot run here, carries `<!-- not run: REASON -->` on the line
  before it; `<!-- slow: REASON -->` there marks a block that runs, under @pytest.mark.slow.

A command that names a file under ../shared/data (real data beside the repository, see
tests/data_helpers.py) runs where that folder is, one level above the temporary folder, and is
skipped with a reason when the file is absent.
"""
import argparse
import contextlib
import io
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

import fastmlp
from data_helpers import SHARED_DATA, shared_file
from fastmlp.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 200

FENCE = re.compile(r"^```(.*)$")
MARKER = re.compile(r"^<!-- (not run|slow): (.+?) -->$")


@dataclass
class Block:
    page: Path
    line: int            # 1-based line of the opening fence
    info: str            # the fence's info string, e.g. "python"
    body: str
    marker: tuple | None  # ("not run" | "slow", reason) from the line before the fence
    output: "Block | None" = None   # the ```text block that shows what a python block prints

    @property
    def where(self):
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def read_blocks(page):
    """The fenced blocks of a Markdown page, each python block paired with its output block."""
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks, i, last_text = [], 0, ""       # last_text: the last non-blank line outside a block
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            if lines[i].strip():
                last_text = lines[i].strip()
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == "```"), None)
        assert end is not None, f"{page.relative_to(ROOT)}:{i + 1}: a code block is never closed"
        marker = MARKER.match(last_text)
        block = Block(page, i + 1, opening.group(1).strip(), "\n".join(lines[i + 1:end]),
                      marker.groups() if marker else None)
        previous = blocks[-1] if blocks else None
        if (block.info == "text" and previous is not None and previous.info == "python"
                and last_text == "```" and not block.marker):
            previous.output = block                    # directly under its python block
        else:
            blocks.append(block)
        last_text, i = "```", end + 1
    return blocks


def runnable(block):
    return block.info in ("python", "console") and (block.marker is None or block.marker[0] == "slow")


ALL_BLOCKS = [b for page in PAGES for b in read_blocks(page)]
RUN = [pytest.param(b, id=b.where, marks=[pytest.mark.slow] if b.marker else [])
       for b in ALL_BLOCKS if runnable(b)]


# --- what may differ between the docs and a run: timings, run-folder names, the install folder ----

SECONDS = re.compile(r"\b\d+(?:\.\d+)? s\b")              # "training 0.4 s", "(8.0 s)"
RUN_FOLDER = re.compile(r"\bruns/\d{8}-\d{6}\b")           # runs/20261130-161120 (a timestamp)
INSTALLED = str(Path(fastmlp.__file__).parents[1])        # the folder fastmlp is installed in


def normalise(text):
    """Timings in seconds become <s>, timestamped run folders runs/<time>, the folder fastmlp is
    installed in /path/to (as the docs write it); a Markdown table's `seconds` column is blanked;
    trailing blanks go."""
    out, seconds_column = [], None
    for line in text.strip("\n").replace(INSTALLED + os.sep, "/path/to/").splitlines():
        line = RUN_FOLDER.sub("runs/<time>", SECONDS.sub("<s> s", line.rstrip()))
        if line.startswith("|"):
            cells = line.split("|")
            if "seconds" in [c.strip() for c in cells]:
                seconds_column = [c.strip() for c in cells].index("seconds")
            elif seconds_column is not None and not set(cells[seconds_column]) <= set("-: "):
                cells[seconds_column] = " <s> "
                line = "|".join(cells)
        else:
            seconds_column = None
        out.append(line)
    return "\n".join(out)


def console_commands(block):
    """(command, shown output) for each `$ ` line of a console block."""
    commands, lines = [], block.body.splitlines()
    i = 0
    while i < len(lines):
        assert lines[i].startswith("$ "), f"{block.where}: a console block starts each command with '$ '"
        command = lines[i][2:]
        while command.endswith("\\"):
            i += 1
            command = command[:-1] + " " + lines[i].strip()
        i += 1
        shown = []
        while i < len(lines) and not lines[i].startswith("$ "):
            shown.append(lines[i])
            i += 1
        commands.append((command, "\n".join(shown)))
    return commands


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """An empty folder to run in, with ../shared/data beside it when the real data is at hand."""
    if SHARED_DATA.is_dir():
        (tmp_path / "shared").mkdir()
        (tmp_path / "shared" / "data").symlink_to(SHARED_DATA)
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    return tmp_path / "work"


@pytest.mark.parametrize("block", RUN)
def test_block_runs_and_prints_what_it_shows(block, folder):
    for name in re.findall(r"\.\./shared/data/([\w-]+(?:\.[\w-]+)*)", block.body):
        shared_file(name)                              # skips when the real data is absent
    if block.info == "python":
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(block.body, block.where, "exec"), {"__name__": "__docs__"})
        shown = block.output.body if block.output else ""
        assert normalise(printed.getvalue()) == normalise(shown), \
            f"{block.where}: the block prints something else than its ```text block shows:\n{printed.getvalue()}"
        return
    for command, shown in console_commands(block):
        argv = shlex.split(command)
        assert argv[0] == "fastmlp", f"{block.where}: console blocks run fastmlp commands only: {command}"
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            status = main(argv[1:])
        assert status in (None, 0), f"{block.where}: `{command}` exited {status}"
        assert normalise(printed.getvalue()) == normalise(shown), \
            f"{block.where}: `{command}` prints something else than the block shows:\n{printed.getvalue()}"


@pytest.mark.parametrize("block", [pytest.param(b, id=b.where) for b in ALL_BLOCKS if not runnable(b)])
def test_every_other_block_says_why_it_is_not_run(block):
    assert block.marker and block.marker[0] == "not run", (
        f"{block.where}: a ```{block.info} block is neither run (python, console) nor marked with "
        f"<!-- not run: REASON --> on the line before it")


def test_the_pages_have_blocks_that_run():
    # guards the parser: a page that silently yields no runnable block would check nothing
    for name in ("README.md", "docs/guide.md"):
        assert any(b.page == ROOT / name for b in ALL_BLOCKS if runnable(b)), f"{name}: no block runs"


def test_readme_stays_short():
    lines = len((ROOT / "README.md").read_text(encoding="utf-8").splitlines())
    assert lines <= README_MAX_LINES, (
        f"README.md has {lines} lines, more than {README_MAX_LINES}: it is the first page a newcomer "
        f"reads; move detail to a page under docs/ and link to it")


# --- links ------------------------------------------------------------------------------------------

LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchors(page):
    """GitHub's heading anchors: lower case, punctuation but - and _ dropped, spaces to -."""
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
            for h in re.findall(r"^#+ (.+)$", text, flags=re.M)}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page):
    broken = []
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target):
            continue                                   # https:, mailto:
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target} (no {file})")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{target} (no heading #{anchor} in {file.name})")
    assert not broken, f"{page.relative_to(ROOT)}: broken links: {', '.join(broken)}"


# --- what the docs say about the command line and the install, against the real thing --------------

def subcommands(parser):
    """{name: parser} of an argparse parser's subcommands (none: {})."""
    return next((a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction)), {})


def option_strings(parser):
    """Every --flag of a parser and of its subcommands, nested ones included."""
    found = {o for a in parser._actions for o in a.option_strings}
    for sub in subcommands(parser).values():
        found |= option_strings(sub)
    return found


def test_readme_lists_every_command():
    listed = set(re.findall(r"^\| `fastmlp ([\w-]+)", (ROOT / "README.md").read_text(encoding="utf-8"),
                            flags=re.M))
    commands = set(subcommands(build_parser()))
    assert listed == commands, (f"README.md's table of commands lists {sorted(listed)}; fastmlp has "
                                f"{sorted(commands)}: give each command one line there")


def test_synopsis_flags_exist():
    # a synopsis is not run, so nothing else would notice a renamed or removed flag
    synopses = [b for b in ALL_BLOCKS if not runnable(b) and b.body.startswith("fastmlp ")]
    assert synopses, "no synopsis block (one starting with `fastmlp `) found in the docs"
    commands = subcommands(build_parser())
    for block in synopses:
        for part in re.split(r"^(?=fastmlp )", block.body, flags=re.M)[1:]:
            name = part.split()[1]
            assert name in commands, f"{block.where}: the synopsis shows `fastmlp {name}`, no such command"
            shown = re.sub(r"\[any [^]]*\]", "", part)    # "[any `train` flag but --lam]" names no flag of its own
            unknown = set(re.findall(r"--[a-z][a-z0-9-]*", shown)) - option_strings(commands[name])
            assert not unknown, f"{block.where}: `fastmlp {name}` has no flags {sorted(unknown)}"


def test_readme_installs_what_ci_installs():
    # .ci/run installs "exactly as README tells a new user"; the examples need those extras
    pip = r'pip install (?:-q )?-e "\.\[([\w,]+)\]"'
    ci = re.search(pip, (ROOT / ".ci" / "run").read_text(encoding="utf-8"))
    readme = re.search(pip, (ROOT / "README.md").read_text(encoding="utf-8"))
    assert ci and readme, "an editable `pip install -e \".[extras]\"` line in README.md and .ci/run"
    assert set(readme.group(1).split(",")) == set(ci.group(1).split(",")), (
        f"README.md installs the extras [{readme.group(1)}], .ci/run [{ci.group(1)}]: keep them equal")
