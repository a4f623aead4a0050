"""Hostile model files: every malformed file gives one clean ArchiveError, quickly and in bounded memory."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .model_files import CASES

RUNNER = Path(__file__).resolve().parent / "model_files.py"


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """Every case loaded in one fresh process (so that its peak memory covers all of them)."""
    folder = tmp_path_factory.mktemp("hostile-models")
    result = subprocess.run([sys.executable, str(RUNNER), str(folder)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    return {line.get("case", "peak"): line for line in lines}


@pytest.mark.parametrize("case", list(CASES))
def test_a_malformed_model_file_gives_one_clean_error(outcomes: dict[str, dict], case: str) -> None:
    outcome = outcomes[case]
    assert outcome["error"] is not None, f"{case}: loaded"
    assert "SeqtagError" in outcome["mro"], outcome
    assert "\n" not in outcome["message"] and len(outcome["message"]) < 400, outcome["message"]
    assert re.search(CASES[case][1], outcome["message"]), outcome["message"]
    assert outcome["seconds"] < 10


def test_all_cases_together_stay_under_1_gb(outcomes: dict[str, dict]) -> None:
    assert outcomes["peak"]["peak_rss_mb"] < 1024
