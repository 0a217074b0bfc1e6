"""The README is a test: its main set-up command's job and every Python snippet, exactly as printed,
from a fresh working directory (relative paths, as a newcomer pastes them)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README.read_text(), re.S)


def _env() -> dict[str, str]:
    env = dict(os.environ, RAY_AUTH_MODE="disabled", RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",
               PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    env.pop("RAY_ADDRESS", None)
    return env


def test_setup_commands_are_the_two_documented_ones():
    setup = [b.strip() for b in _blocks("bash") if b.strip().startswith("python3 -m venv .venv")]
    assert setup == [
        'python3 -m venv .venv && . .venv/bin/activate && pip install -e . && infotok demo',
        'python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[test]" && pytest -q',
    ]
    ci = (README.parent / ".ci" / "run").read_text()
    assert setup[1] in ci  # CI runs the README's test command


@pytest.mark.timeout(600)
def test_demo_command_and_python_snippets_as_printed(tmp_path):
    (main_job,) = [b.strip().split(" && ")[-1] for b in _blocks("bash") if "pip install -e . &&" in b]
    assert main_job == "infotok demo"
    # The environment set-up (venv + install) is what this test session already is; the job runs as
    # printed, in an empty working directory, writing to its relative default output.
    proc = subprocess.run(main_job, shell=True, cwd=tmp_path, env=_env(), capture_output=True, text=True,
                          timeout=540)
    assert proc.returncode == 0, proc.stderr[-3000:]
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
        png = tmp_path / "infotok-demo" / "compare" / f"{name}.png"
        assert png.stat().st_size > 0
        assert (tmp_path / "infotok-demo" / "reconstructions" / f"{name}.mp4").stat().st_size > 0
    from PIL import Image

    from jobs.demo_cmd import CAPTION_HEIGHT, LABEL_WIDTH

    image = Image.open(tmp_path / "infotok-demo" / "compare" / "2_photo_pan.png")
    assert image.width > LABEL_WIDTH and image.height > CAPTION_HEIGHT
    label_column = image.crop((0, CAPTION_HEIGHT, LABEL_WIDTH, image.height)).convert("L")
    assert label_column.getextrema()[0] < 128  # the rows are labelled (dark text on the white column)

    snippets = _blocks("python")
    assert snippets, "the README shows how to load the tokens"
    for i, code in enumerate(snippets):
        script = tmp_path / f"readme_snippet_{i}.py"
        script.write_text(code)
        run = subprocess.run([sys.executable, script.name], cwd=tmp_path, env=_env(), capture_output=True,
                             text=True, timeout=300)
        assert run.returncode == 0, (code, run.stderr[-3000:])

    # The demo's dataset (videos of uneven length, one shard each): every rank the same number of
    # batches, and together every sample once.
    from pipeline.loader import LoaderConfig, TokenDataLoader, TokenDataset

    root = str(tmp_path / "infotok-demo" / "dataset")
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
