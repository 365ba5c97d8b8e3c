"""The golden captures of the real implementations (../shared/captures).

CI clones the repo with shared/ beside it; elsewhere set SROAMD_CAPTURES.
"""

import json
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CANDIDATES = (os.path.join(REPO, "..", "shared", "captures"), os.environ.get("SROAMD_CAPTURES"))


def load_jsonl(name: str) -> list[dict]:
    """The lines of a capture file; skips the test if no capture is found."""
    for directory in CANDIDATES:
        if directory and os.path.exists(os.path.join(directory, name)):
            with open(os.path.join(directory, name)) as f:
                return [json.loads(line) for line in f if line.strip()]
    pytest.skip(f"capture {name} not found in ../shared/captures nor $SROAMD_CAPTURES")
