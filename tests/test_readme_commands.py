"""Every shell example in README.md and in the reference pages under docs/ runs as printed.

The examples live in fenced blocks (each document is read on its own, README first):

- ```` ```sh ````: one command per line (``\\`` continues a line, ``#`` starts a comment);
- ```` ```console ````: ``$ command`` lines, each followed by the output it prints on stdout;
- ```` ```python ```` whose first line is ``# file: NAME.py``: a file the reader saves; it is written
  into the scratch folder and imported, so the commands after it can use it.

Each ``python cli.py …`` command is parsed by the CLI itself (click resolves the subcommand and
converts every option: an unknown option, a bad choice or a bad number fails). The cheap ones (``zoo``,
``leakage-sets``, ``--help``, ``profile`` of a small model with ``--no-latency``) also run for real, in
document order, in a scratch folder holding a copy of ``data/profiles`` (the repository is never written); they must exit 0,
and a ``console`` block's shown output must equal what they print. Leakage, training, evaluation and
timed profiles are too slow for the test suite: they are parsed only. ``make`` targets must exist in
the Makefile and scripts under ``benchmarks/`` must exist.
"""

from __future__ import annotations

import importlib
import re
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import click
import pytest
import torch
from click.testing import CliRunner

from cli import main
from profiler import costs, zoo

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
SMALL_MODELS = ("lenet7", "lenet9", "lenet12")


@dataclass
class Example:
    """One command of the README, with the output shown under it (``console`` blocks only)."""

    command: str
    expected: str | None = None
    files: dict[str, str] = field(default_factory=dict)   # files saved before it, name → text


def _logical_lines(body: str) -> list[str]:
    lines, pending = [], ""
    for line in body.splitlines():
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        lines.append(pending + line)
        pending = ""
    return [line for line in lines if line.strip() and not line.lstrip().startswith("#")]


def extract(text: str) -> list[Example]:
    """The README's commands in order; python ``# file:`` blocks attach to the next command."""
    examples: list[Example] = []
    files: dict[str, str] = {}
    for lang, body in FENCE.findall(text):
        if lang == "python":
            first, _, rest = body.partition("\n")
            if first.startswith("# file: "):
                files[first[len("# file: "):].strip()] = rest
        elif lang == "sh":
            for line in _logical_lines(body):
                examples.append(Example(line.strip(), None, files))
                files = {}
        elif lang == "console":
            for chunk in re.split(r"^\$ ", body, flags=re.M)[1:]:
                command, _, output = chunk.partition("\n")
                examples.append(Example(command.strip(), output, files))
                files = {}
    return examples


def _cli_args(command: str) -> list[str] | None:
    args = shlex.split(command, comments=True)
    while args and re.fullmatch(r"[A-Z_]+=\S*", args[0]):   # THREADS=1 script.sh
        args = args[1:]
    return args[2:] if args[:2] == ["python", "cli.py"] else None


def parse_problem(cli_args: list[str]) -> str | None:
    """Let click parse and convert the arguments without running the command."""
    if not cli_args:
        return "no subcommand"
    command = main.get_command(click.Context(main), cli_args[0])
    if command is None:
        return f"no such command {cli_args[0]!r}"
    try:
        command.make_context(cli_args[0], list(cli_args[1:]), parent=click.Context(main, info_name="cli.py"))
    except click.ClickException as exc:
        return exc.format_message()
    except click.exceptions.Exit:           # --help
        return None
    return None


def is_cheap(cli_args: list[str]) -> bool:
    """Commands that take seconds: they run for real."""
    if "--help" in cli_args or "-h" in cli_args or cli_args[:1] in (["zoo"], ["leakage-sets"]):
        return True
    if cli_args[:1] != ["profile"] or "--no-latency" not in cli_args or "--all" in cli_args:
        return False
    model = next((a for a in cli_args[1:] if not a.startswith("-")), None)
    if "--model" in cli_args:
        model = cli_args[cli_args.index("--model") + 1]
    return model is not None and (model in SMALL_MODELS or ":" in model) and "--weights" not in cli_args


def _same_output(shown: str, printed: str) -> bool:
    def norm(text: str) -> list[str]:
        return [line.rstrip() for line in text.rstrip("\n").splitlines()]
    return norm(shown) == norm(printed)


def check(example: Example, scratch: Path) -> str | None:
    """Why ``example`` does not run as printed, or ``None``."""
    for name, text in example.files.items():
        (scratch / name).write_text(text)
        try:
            importlib.import_module(Path(name).stem)
        except Exception as exc:  # the reader's file must import as printed
            return f"{name} does not import: {type(exc).__name__}: {exc}"
    args = shlex.split(example.command, comments=True)
    cli_args = _cli_args(example.command)
    if cli_args is None:
        if args[:1] == ["make"]:
            makefile = (ROOT / "Makefile").read_text()
            missing = [t for t in args[1:] if not re.search(rf"^{re.escape(t)}:", makefile, re.M)]
            return f"no make target {missing}" if missing else None
        script = next((a for a in args if a.startswith("benchmarks/")), None)
        if script is not None:
            return None if (ROOT / script).is_file() else f"{script} does not exist"
        return f"not a command this test knows how to check: {example.command!r}"
    problem = parse_problem(cli_args)
    if problem or not is_cheap(cli_args):
        return problem
    threads = torch.get_num_threads()
    try:
        result = CliRunner().invoke(main, cli_args)
    finally:
        torch.set_num_threads(threads)
    if result.exit_code != 0:
        return f"exit code {result.exit_code}: {result.output.strip()[-500:]}"
    if example.expected is not None and not _same_output(example.expected, result.stdout):
        return "the output shown differs from what it prints now:\n" + result.stdout
    return None


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """A folder like the repository's root (a copy of data/profiles), with the registries restored after."""
    folder = tmp_path_factory.mktemp("readme")
    shutil.copytree(ROOT / "data" / "profiles", folder / "data" / "profiles")
    saved = dict(zoo.ZOO._specs), dict(costs.OP_FORMULAS._entries), list(sys.path), set(sys.modules)
    mp = pytest.MonkeyPatch()
    mp.chdir(folder)
    mp.syspath_prepend(str(folder))
    yield folder
    mp.undo()
    zoo.ZOO._specs, costs.OP_FORMULAS._entries = saved[0], saved[1]
    for name in set(sys.modules) - saved[3]:
        if getattr(sys.modules[name], "__file__", "") and str(folder) in sys.modules[name].__file__:
            del sys.modules[name]


DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
README_EXAMPLES = extract((ROOT / "README.md").read_text())
EXAMPLES = [e for doc in DOCUMENTS for e in extract(doc.read_text())]


def test_the_readme_has_examples_of_every_part():
    commands = " ".join(e.command for e in README_EXAMPLES)
    for part in ("cli.py zoo", "cli.py profile", "cli.py leakage", "cli.py train", "cli.py evaluate", "make demo"):
        assert part in commands
    assert sum(e.expected is not None for e in README_EXAMPLES) >= 4


LINK = re.compile(r"\]\(([^)\s]+)\)")


def _anchors(text: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
            for h in re.findall(r"^#+ (.*)$", FENCE.sub("", text), re.M)}


def broken_links(doc: Path) -> list[str]:
    """Relative links of ``doc`` whose file, or heading anchor, does not exist."""
    broken = []
    for target in LINK.findall(doc.read_text()):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        file = (doc.parent / path).resolve() if path else doc
        if not file.exists() or (anchor and file.suffix == ".md" and anchor not in _anchors(file.read_text())):
            broken.append(target)
    return broken


def test_every_reference_page_is_linked_and_every_link_resolves():
    readme = (ROOT / "README.md").read_text()
    assert len(DOCUMENTS) >= 6
    assert [d.name for d in DOCUMENTS[1:] if f"docs/{d.name}" not in readme] == []
    assert {d.name: broken_links(d) for d in [*DOCUMENTS, ROOT / "BENCHMARKS.md"] if broken_links(d)} == {}


def test_the_link_check_can_fail(tmp_path):
    (tmp_path / "there.md").write_text("# A heading, here\n")
    doc = tmp_path / "doc.md"
    doc.write_text("[a](there.md#a-heading-here) [b](missing.md) [c](there.md#nope) [d](https://x.org/y)\n")
    assert broken_links(doc) == ["missing.md", "there.md#nope"]


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.command[:70] for e in EXAMPLES])
def test_readme_example_runs_as_printed(example, scratch):
    problem = check(example, scratch)
    assert problem is None, f"README: `{example.command}`: {problem}"
    assert not (ROOT / "my").exists()       # real runs happen in the scratch folder, not the repository


def test_the_checker_catches_a_wrong_readme(tmp_path, monkeypatch):
    """The test can fail: an unknown option, a wrong shown output, a missing script or make target."""
    monkeypatch.chdir(tmp_path)
    wrong = extract("""
```sh
python cli.py profile lenet7 --no-latency --bogus
python cli.py leakage --model lenet7 --budget huge
python cli.py train --iterations many
make nosuchtarget
THREADS=1 benchmarks/no_such_script.sh
rm -rf /
```

```console
$ python cli.py zoo
name  input  units
```
""")
    problems = [check(example, tmp_path) for example in wrong]
    assert all(problems), problems
    assert "--bogus" in problems[0] and "huge" in problems[1] and "many" in problems[2]
    assert "differs" in problems[-1]
