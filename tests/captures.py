"""Where the golden captures of the real implementations are."""

import json
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CAPTURES = os.environ.get("SROAMD_CAPTURES") or os.path.join(REPO, "..", "shared", "captures")


def load_jsonl(name: str) -> list[dict]:
    path = os.path.join(CAPTURES, name)
    if not os.path.exists(path):
        pytest.skip(f"capture {path} not found (set SROAMD_CAPTURES)")
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]
