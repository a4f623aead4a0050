"""The command answers at once: what each entry point imports (a fresh interpreter per check).

Time is measured by ``scripts/bench.py``, not here; these tests pin the causes: the CLI's
argument parsing and ``import seqtag`` load no torch, and loading a model loads neither
training code, matplotlib, nor the ~800 modules (sympy, torch._dynamo) that PyTorch pulls in
on the first operation on the meta device without a native kernel.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

MODEL = Path(__file__).resolve().parent / "fixtures" / "compat" / "tagging.seqtag"


def imported_after(code: str) -> set[str]:
    probe = f"import sys, json\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, check=True)
    return set(json.loads(result.stdout.splitlines()[-1]))


def test_import_seqtag_and_the_cli_parser_load_no_torch() -> None:
    modules = imported_after("import seqtag, seqtag.cli\nseqtag.cli.build_parser().parse_args(['info', 'x'])")
    assert "torch" not in modules and "pydantic" not in modules and "matplotlib" not in modules


def test_version_answers_without_torch() -> None:
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "seqtag.cli", "--version"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.startswith("seqtag ")
    assert "| torch\n" not in result.stderr and "torch" not in {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()}


def test_loading_a_model_loads_no_training_code_plotting_or_symbolic_maths() -> None:
    modules = imported_after(f"import seqtag\nseqtag.load({str(MODEL)!r}).tag('Paris')")
    heavy = sorted(m for m in modules if m.split(".")[0] in ("sympy", "matplotlib", "gensim", "datasets", "spacy")
                   or m.startswith(("torch._dynamo", "seqtag.training")))
    assert heavy == []


def test_a_written_model_file_is_memory_mapped_and_keeps_half_tables_half(tmp_path: Path) -> None:
    import zipfile

    import seqtag
    from seqtag.io import WEIGHTS_ALIGNMENT, _mapped_member

    tagger = seqtag.load(MODEL)
    copy = tagger.task.save(tmp_path / "copy.seqtag")
    with zipfile.ZipFile(copy) as archive:
        mapped = _mapped_member(copy, archive, "weights.safetensors")
        assert mapped is not None and len(mapped) == archive.getinfo("weights.safetensors").file_size
    with open(copy, "rb") as handle:  # the weights start aligned, so tensors are views of the file's pages
        assert handle.read().index(bytes(mapped[:64])) % WEIGHTS_ALIGNMENT == 0
    again = seqtag.load(copy)
    assert again.task.model.words.frozen.dtype == tagger.task.model.words.frozen.dtype == __import__("torch").float16
    text = "Peter Blackburn visited the European Commission in Brussels on Monday."
    assert [s.tags for s in again.tag(text)] == [s.tags for s in tagger.tag(text)]


def test_the_console_script_pauses_the_collector_while_importing_and_skips_the_teardown() -> None:
    """entry() (the console script) pauses the garbage collector for the command's imports, then freezes
    what they created and turns it back on, and ends a finished ``info`` with ``os._exit`` (here
    replaced, to look at the state); main() called as a function does neither."""
    probe = (f"import gc, os, sys, seqtag.cli as cli\nsys.argv = ['seqtag', 'info', {str(MODEL)!r}]\n"
             "exits = []\nos._exit = exits.append\n"
             "import io, contextlib\nwith contextlib.redirect_stdout(io.StringIO()):\n"
             "    {call}\nprint(gc.isenabled(), gc.get_freeze_count() > 1000, exits)")
    for call, expected in (("cli.main(sys.argv[1:])", "True False []"), ("cli.entry()", "True True [0]")):
        result = subprocess.run([sys.executable, "-c", probe.replace("{call}", call)], capture_output=True, text=True,
                                timeout=300, check=True)
        assert result.stdout.split("\n")[-2] == expected, (call, result.stdout, result.stderr)
