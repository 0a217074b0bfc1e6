"""The README and docs/ are tests: the main set-up command's job and every bash and Python block of
README.md and docs/*.md, exactly as printed, each from a fresh working directory (relative paths, as
a newcomer pastes them). Blocks fenced ```text or ```console are shown, not run (output, hours of
training, a cluster or a bucket); every fence says which it is. Relative links must resolve and the
README's docs index must list every page."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]
RUN = ("bash", "python")
SHOWN = ("text", "console")
SETUP_PREFIX = "python3 -m venv .venv"
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.S | re.M)
LINK = re.compile(r"(?<!!)\[[^\]\n]*\]\(([^)\s]+)\)")


def _fences(page: Path) -> list[tuple[str, str]]:
    """(language, body) of every fenced block of a page, in order."""
    return [(lang.strip(), body) for lang, body in FENCE.findall(page.read_text())]


def _blocks(lang: str, page: Path = README) -> list[str]:
    return [body for tag, body in _fences(page) if tag == lang]


def _runnable() -> list[tuple[Path, int, str, str]]:
    """Every bash and python block of every page but the README's set-up commands."""
    out = []
    for page in PAGES:
        for i, (lang, body) in enumerate(_fences(page)):
            if lang in RUN and not body.strip().startswith(SETUP_PREFIX):
                out.append((page, i, lang, body))
    return out


def _env() -> dict[str, str]:
    env = dict(os.environ, RAY_AUTH_MODE="disabled", RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",
               PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    env.pop("RAY_ADDRESS", None)
    return env


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text())
    return {_slug(m) for m in re.findall(r"^#+\s+(.*)$", text, re.M)}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """`infotok demo` as the README prints it, run once in an empty working directory; the blocks
    that need a dataset read its output (`infotok-demo/`)."""
    (main_job,) = [b.strip().split(" && ")[-1] for b in _blocks("bash") if "pip install -e . &&" in b]
    assert main_job == "infotok demo"
    # The environment set-up (venv + install) is what this test session already is; the job runs as
    # printed, in an empty working directory, writing to its relative default output.
    cwd = tmp_path_factory.mktemp("demo")
    proc = subprocess.run(main_job, shell=True, cwd=cwd, env=_env(), capture_output=True, text=True,
                          timeout=540)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return cwd, proc


def test_setup_commands_are_the_two_documented_ones():
    setup = [b.strip() for b in _blocks("bash") if b.strip().startswith(SETUP_PREFIX)]
    assert setup == [
        'python3 -m venv .venv && . .venv/bin/activate && pip install -e . && infotok demo',
        'python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[test]" && pytest -q',
    ]
    ci = (README.parent / ".ci" / "run").read_text()
    assert setup[1] in ci  # CI runs the README's test command
    for page in DOCS:  # the set-up commands are the README's alone
        assert not any(b.strip().startswith(SETUP_PREFIX) for lang, b in _fences(page) if lang in RUN), page


def test_every_fence_says_whether_it_runs():
    for page in PAGES:
        text = page.read_text()
        assert text.count("\n```") % 2 == 0, f"{page.name}: an unclosed code fence"
        for lang, body in _fences(page):
            assert lang in RUN + SHOWN, f"{page.name}: a ```{lang} block (use {RUN + SHOWN}): {body[:80]!r}"


def test_relative_links_resolve():
    for page in PAGES:
        for target in LINK.findall(FENCE.sub("", page.read_text())):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            assert dest.exists(), f"{page.name}: link {target!r} -> {dest} does not exist"
            if anchor and dest.suffix == ".md":
                assert anchor in _anchors(dest), f"{page.name}: link {target!r}: no heading #{anchor} in {dest.name}"


def test_readme_docs_index_lists_every_page():
    text = README.read_text()
    assert "## Documentation" in text
    index = text.split("## Documentation", 1)[1].split("\n## ", 1)[0]
    listed = {Path(t).name for t in LINK.findall(index) if t.startswith("docs/")}
    assert listed == {p.name for p in DOCS}, (sorted(listed), [p.name for p in DOCS])
    assert len(text.splitlines()) <= 150, "the README is a quick start: reference goes to docs/"


@pytest.mark.timeout(900)
def test_demo_command_as_printed(demo):
    cwd, proc = demo
    table = {line.split()[0]: line.split() for line in proc.stdout.splitlines()
             if re.match(r"^\d_\w+\s+\d+\s+\d+", line)}
    assert sorted(table) == ["0_static_scene", "1_moving_shapes", "2_photo_pan", "3_texture_pan", "4_evolving_noise"]
    psnr = {name: float(row[5]) for name, row in table.items()}
    assert all(p > 10 for p in psnr.values()) and psnr["0_static_scene"] > psnr["4_evolving_noise"]
    tokens = {name: int(row[2]) for name, row in table.items()}
    # the gain router: tokens go where they buy quality, not to content more tokens barely improve
    assert max(tokens["3_texture_pan"], tokens["4_evolving_noise"]) < min(tokens["0_static_scene"],
                                                                          tokens["1_moving_shapes"])
    for name in table:
        png = cwd / "infotok-demo" / "compare" / f"{name}.png"
        assert png.stat().st_size > 0
        assert (cwd / "infotok-demo" / "reconstructions" / f"{name}.mp4").stat().st_size > 0
    from PIL import Image

    from pipeline.decode.compare_png import CAPTION_HEIGHT, LABEL_WIDTH

    image = Image.open(cwd / "infotok-demo" / "compare" / "2_photo_pan.png")
    assert image.width > LABEL_WIDTH and image.height > CAPTION_HEIGHT
    label_column = image.crop((0, CAPTION_HEIGHT, LABEL_WIDTH, image.height)).convert("L")
    assert label_column.getextrema()[0] < 128  # the rows are labelled (dark text on the white column)

    # The demo's dataset (videos of uneven length, one shard each): every rank the same number of
    # batches, and together every sample once.
    from pipeline.loader import LoaderConfig, TokenDataLoader, TokenDataset

    root = str(cwd / "infotok-demo" / "dataset")
    for world in (2, 3):
        counts, seen = [], []
        for rank in range(world):
            ds = TokenDataset(root, LoaderConfig(mode="packed", seq_len=1024), rank=rank, world_size=world)
            batches = list(TokenDataLoader(ds, batch_size=4))
            counts.append(len(batches))
            seen += [i for b in batches for i, pad in zip(b["sample_index"].tolist(), b["padding"].tolist())
                     if not pad]
        assert len(set(counts)) == 1, (world, counts)
        assert sorted(seen) == list(range(len(seen))), world


def test_the_readme_shows_loading_and_decoding():
    snippets = _blocks("python")
    assert any("TokenDataLoader" in s for s in snippets), "the README shows how to load the tokens"
    assert any("detokenize" in s for s in snippets), "the README shows how to decode them to video"


@pytest.mark.timeout(900)
@pytest.mark.parametrize(("page", "index", "lang", "code"),
                         [pytest.param(*b, id=f"{b[0].name}-{b[1]}") for b in _runnable()])
def test_block_runs_as_printed(demo, tmp_path: Path, page: Path, index: int, lang: str, code: str):
    # a fresh working directory holding a copy of the demo's output, so no block sees another's files
    shutil.copytree(demo[0] / "infotok-demo", tmp_path / "infotok-demo")
    script = tmp_path / f"block_{index}.{'sh' if lang == 'bash' else 'py'}"
    script.write_text(code)
    argv = ["bash", "-e", script.name] if lang == "bash" else [sys.executable, script.name]
    run = subprocess.run(argv, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, (page.name, code, run.stdout[-2000:], run.stderr[-3000:])
