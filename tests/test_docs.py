"""README.md's included sections equal the docs/*.md files they come from (docs/build_readme.py fills them)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_includes_are_current(load_script):
    mod = load_script("docs/build_readme.py")
    readme = (ROOT / "README.md").read_text()
    found = list(mod.INCLUDE.finditer(readme))
    assert len(found) >= 5
    for m in found:
        expected = mod.section(ROOT / m.group("path")).strip()
        assert m.group("body").strip() == expected, f"README's copy of {m.group('path')} is stale: run docs/build_readme.py"
