"""Keep each distinct test-set manifest under benchmarks/results/speech once.

Every GPU speech run returns a copy of the test set's manifest (about 170 KB), and most copies are identical; they
count against what a device call may carry. This moves each ``test_set_manifest.json`` under ROOT into
``STORE/<sha256>.json`` (once per content) and leaves beside it ``test_set_manifest.sha256``, a ``sha256sum`` line
naming the stored copy by its relative path, so ``sha256sum -c`` checks it and merge_speech_evals.py reads it:

    python benchmarks/store_speech_manifests.py                      # benchmarks/results/speech
    python benchmarks/store_speech_manifests.py ROOT --store ROOT/test_set_manifests

Running it again does nothing new (idempotent).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
from pathlib import Path

MANIFEST = "test_set_manifest.json"
REFERENCE = "test_set_manifest.sha256"


def store_manifests(root: Path, store: Path) -> list[Path]:
    """Replace each ``MANIFEST`` under ``root`` (outside ``store``) by a ``REFERENCE`` to its copy in ``store``;
    returns the folders changed."""
    store.mkdir(parents=True, exist_ok=True)
    changed = []
    for path in sorted(root.rglob(MANIFEST)):
        if store.resolve() in path.resolve().parents:
            continue
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        kept = store / f"{digest}.json"
        if not kept.is_file():
            shutil.copyfile(path, kept)
        (path.parent / REFERENCE).write_text(f"{digest}  {os.path.relpath(kept, path.parent)}\n")
        path.unlink()
        changed.append(path.parent)
    return changed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("root", type=Path, nargs="?", default=Path(__file__).parent / "results" / "speech",
                   help="folder searched for test_set_manifest.json (default: benchmarks/results/speech)")
    p.add_argument("--store", type=Path, default=None, help="where the distinct manifests go "
                   "(default: ROOT/test_set_manifests)")
    args = p.parse_args()
    if not args.root.is_dir():
        raise SystemExit(f"no folder {args.root}")
    store = args.store or args.root / "test_set_manifests"
    changed = store_manifests(args.root, store)
    kept = len(list(store.glob("*.json")))
    print(f"{len(changed)} manifest(s) replaced by references; {kept} distinct manifest(s) in {store}")


if __name__ == "__main__":
    main()
