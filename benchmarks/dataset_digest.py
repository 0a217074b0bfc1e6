"""SHA-256 of every file of a dataset (dataset.json without its `created_at`), to show that two
trees of the code write the same bytes: run the same job with each, then diff the two listings.

    python benchmarks/dataset_digest.py OUTPUT [OUTPUT ...] > digest.txt

Used for the house move (issue 11): the same two jobs run with the old tree (a `git worktree` on
PYTHONPATH) and the new one gave identical listings.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path


def digest(root: Path) -> list[str]:
    out = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if path.name == "dataset.json":
            doc = json.loads(data)
            doc.pop("created_at", None)
            data = json.dumps(doc, sort_keys=True).encode()
        out.append(f"{hashlib.sha256(data).hexdigest()}  {path.relative_to(root.parent)}")
    return out


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print("\n".join(digest(Path(arg))))
