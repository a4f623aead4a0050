"""The documentation stays true: the generated reference pages match the code, and every command
and Python block of docs/getting-started.md runs.

Getting started's commands run verbatim in a temporary folder that mirrors the repository root
(its top-level entries linked in, without ``runs/``), so the run folders they write land there and
a checkout is left as it was. They train the demo recipe for a few epochs: about 20-40 s in all.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT

GETTING_STARTED = ROOT / "docs" / "getting-started.md"
#: Top-level entries of the checkout that the commands must not see or write into.
LEFT_OUT = {"runs", ".git", "build", "site", ".pytest_cache", ".hypothesis"}


def _load_gen_docs():
    spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "scripts" / "gen_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of every fenced code block of a Markdown text."""
    return [(m.group(1), m.group(2)) for m in re.finditer(r"^```(\w*)[^\n]*\n(.*?)^```", text, re.M | re.S)]


def shell_commands(text: str) -> list[str]:
    """The ``$ `` lines of the console and bash blocks (a trailing backslash continues a line)."""
    commands = []
    for language, body in fenced_blocks(text):
        if language not in ("console", "bash", "shell", "sh"):
            continue
        lines = body.splitlines()
        i = 0
        while i < len(lines):
            line = lines[i]
            if line.startswith("$ "):
                command = line[2:]
                while command.endswith("\\") and i + 1 < len(lines):
                    i += 1
                    command = command[:-1] + " " + lines[i].strip()
                commands.append(command)
            i += 1
    return commands


def python_blocks(text: str) -> list[str]:
    return [body for language, body in fenced_blocks(text) if language == "python"]


def test_the_reference_pages_match_the_code() -> None:
    gen_docs = _load_gen_docs()
    stale = [str(path.relative_to(ROOT)) for path in gen_docs.stale_pages()]
    assert not stale, f"out of date: {', '.join(stale)}; run: python scripts/gen_docs.py"


def test_the_recipe_reference_has_every_key() -> None:
    """Each task's reference page names every key that ``seqtag recipe --task T`` prints."""
    from seqtag.registry import TASKS

    def paths(data: dict, prefix: str = "") -> list[str]:
        found = []
        for key, value in data.items():
            if isinstance(value, dict) and value:
                found += paths(value, f"{prefix}{key}.")
            else:
                found.append(f"{prefix}{key}")
        return found

    for task, entry in TASKS.items():
        page = (ROOT / "docs" / "reference" / f"recipe-{task}.md").read_text(encoding="utf-8")
        defaults = entry.recipe.model_validate({"task": task}).model_dump(mode="json")
        missing = [path for path in paths(defaults) if f"| `{path}` |" not in page]
        assert not missing, f"{task}: keys missing from the reference: {missing}"


def test_the_cli_reference_has_every_command_and_option() -> None:
    import argparse

    from seqtag.cli import build_parser

    page = (ROOT / "docs" / "reference" / "cli.md").read_text(encoding="utf-8")
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name, parser in commands.choices.items():
        assert f"## seqtag {name}" in page
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            for option in action.option_strings:
                assert f"`{option}" in page, f"seqtag {name} {option} is not in docs/reference/cli.md"


def test_the_page_has_commands_to_run() -> None:
    text = GETTING_STARTED.read_text(encoding="utf-8")
    commands = shell_commands(text)
    assert any(c.startswith("seqtag train ") for c in commands)
    assert any(c.startswith("seqtag predict ") for c in commands)
    assert python_blocks(text)


def test_getting_started_runs(tmp_path: Path) -> None:
    text = GETTING_STARTED.read_text(encoding="utf-8")
    for entry in ROOT.iterdir():
        if entry.name not in LEFT_OUT:
            (tmp_path / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "HF_HUB_OFFLINE": "1", "PYTHONHASHSEED": "0"}
    for command in shell_commands(text):
        result = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True,
                                timeout=600)
        assert result.returncode == 0, f"$ {command}\nexit {result.returncode}\n{result.stdout[-2000:]}{result.stderr[-3000:]}"
        assert result.stdout.strip(), f"$ {command} printed nothing"
    # the Python blocks, in order, in one interpreter
    code = "\n\n".join(python_blocks(text))
    if "import spacy" in code and importlib.util.find_spec("spacy") is None:
        pytest.skip("the Python blocks need spaCy: pip install -e '.[dev,spacy]'")
    script = tmp_path / "getting_started_blocks.py"
    script.write_text(code, encoding="utf-8")
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, f"Python blocks of {GETTING_STARTED.name}:\n{result.stdout[-2000:]}{result.stderr[-3000:]}"
    assert "Maria Lopez PER 0 11" in result.stdout
