"""The guide's Python page (docs/src/python.md): every `python` block runs, in order, in one
namespace, and prints what the `text` block after it shows. With TIMELINE_DOCS_BLESS=1 the
`text` blocks are rewritten with what the blocks print."""

import contextlib
import io
import os
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "src" / "python.md"


def blocks(text):
    """(language, body) of every fenced block, in order."""
    return [(m.group(1), m.group(2)) for m in re.finditer(r"```(\w*)\n(.*?)```", text, re.S)]


def test_the_python_page_runs_as_written(tmp_path):
    found = blocks(PAGE.read_text())
    os.symlink(ROOT / "examples", tmp_path / "examples")
    here = os.getcwd()
    os.chdir(tmp_path)
    namespace = {}
    ran = 0
    bless = os.environ.get("TIMELINE_DOCS_BLESS") == "1"
    page = PAGE.read_text()
    try:
        for i, (language, body) in enumerate(found):
            if language != "python":
                continue
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                exec(compile(body, f"{PAGE.name} block {i}", "exec"), namespace)
            ran += 1
            following = found[i + 1] if i + 1 < len(found) else None
            if following and following[0] == "text" and bless:
                page = page.replace(f"```text\n{following[1]}```", f"```text\n{out.getvalue()}```", 1)
            elif following and following[0] == "text":
                assert out.getvalue() == following[1], f"block {i} printed:\n{out.getvalue()}"
            else:
                assert out.getvalue() == "", f"block {i} printed without a text block after it"
    finally:
        os.chdir(here)
    if bless:
        PAGE.write_text(page)
    assert ran >= 8


def test_the_readme_python_example_runs(tmp_path):
    readme = (ROOT / "README.md").read_text()
    found = [body for language, body in blocks(readme) if language == "python"]
    assert found
    os.symlink(ROOT / "examples", tmp_path / "examples")
    here = os.getcwd()
    os.chdir(tmp_path)
    try:
        for body in found:
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                exec(compile(body, "README.md", "exec"), {})
            assert "s2" in out.getvalue()
    finally:
        os.chdir(here)
