"""Run one hostile case in a fresh process with bounded memory and time, and report how it ended.

The process gets ``RLIMIT_AS`` (1 GB by default) and one torch thread; after its ``setup`` (imports,
loading a model) the ``case`` runs under a timer that kills the process when it runs longer than
``seconds`` (SIGALRM's default action, which also stops a loop inside torch). The outcome comes back
as a dict: ``result`` (the case's ``result`` variable, as JSON), or ``error`` / ``mro`` / ``message``
for an exception, and ``seconds`` and ``peak_rss_mb``; ``returncode`` is negative when a signal
(the timer) ended the process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "compat"

_PRELUDE = """
import json, resource, signal, sys, time
resource.setrlimit(resource.RLIMIT_AS, ({memory}, {memory}))
import torch
torch.set_num_threads(1)
import seqtag
"""

_RUN = """
outcome = {{}}
start = time.perf_counter()
signal.setitimer(signal.ITIMER_REAL, {seconds})  # SIGALRM's default action ends the process
try:
    exec(compile({case!r}, "<case>", "exec"))
    outcome["result"] = result
except BaseException as error:
    outcome.update(error=type(error).__name__, mro=[c.__name__ for c in type(error).__mro__], message=str(error))
signal.setitimer(signal.ITIMER_REAL, 0)
outcome["seconds"] = time.perf_counter() - start
outcome["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print("OUTCOME " + json.dumps(outcome, default=str))
"""


def run_bounded(setup: str, case: str, seconds: float = 10.0, memory: int = 1 << 30, timeout: float = 180.0) -> dict[str, Any]:
    """Run ``setup`` then ``case`` (Python source that sets ``result``) in a fresh interpreter.

    ``seconds`` bounds the case (the process is killed after it), ``memory`` the address space,
    ``timeout`` the whole process (start-up included), so a regression fails instead of hanging.
    """
    script = _PRELUDE.format(memory=memory) + textwrap.dedent(setup) + _RUN.format(seconds=seconds, case=textwrap.dedent(case))
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    lines = [line for line in completed.stdout.splitlines() if line.startswith("OUTCOME ")]
    outcome: dict[str, Any] = json.loads(lines[-1][len("OUTCOME "):]) if lines else {}
    outcome["returncode"] = completed.returncode
    outcome["stderr"] = completed.stderr[-2000:]
    return outcome


def assert_clean_error(outcome: dict[str, Any], kind: str, pattern: str) -> None:
    """The case ended in one ``kind`` (a SeqtagError subclass) whose one-line message matches ``pattern``."""
    import re

    assert outcome["returncode"] == 0, outcome
    assert outcome.get("error") == kind, outcome
    assert "SeqtagError" in outcome["mro"], outcome
    assert "Traceback" not in outcome["message"] and "\n" not in outcome["message"], outcome["message"]
    assert len(outcome["message"]) < 400, outcome["message"]
    assert re.search(pattern, outcome["message"]), outcome["message"]


def assert_result(outcome: dict[str, Any], seconds: float = 10.0, memory_mb: float = 1024) -> Any:
    """The case finished without an error, within ``seconds`` and ``memory_mb``; returns its result."""
    assert outcome["returncode"] == 0, f"killed or crashed (timer: {seconds} s): {outcome}"
    assert "error" not in outcome, outcome
    assert outcome["seconds"] < seconds, outcome
    assert outcome["peak_rss_mb"] < memory_mb, outcome
    return outcome["result"]
