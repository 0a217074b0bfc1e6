"""`infotok tokenize --fit-router N` on real mp4 corpora and a real in-process Ray: the router's
per-corpus fit is recorded in job.json, a resume re-uses it and never fits again, another fit is
refused; and the defaults of a new dataset (beta 0.5, a fit for a router that fits per corpus)
never change how an existing dataset resumes."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from click.testing import CliRunner
from pipeline_helpers import read_rows

from jobs.cli import main
from media import moving_square_frames, noise_frames, write_video
from schemas.layout import MANIFEST_NAME, commit_marker, token_part

pytestmark = pytest.mark.timeout(600)

DECODE_ARGS = ["--resolution", "32", "--clip-frames", "5", "--device", "cpu", "--shard-size", "2",
               "--batch-size", "4"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A random-init tiny InfoTok checkpoint that gain2 and the fitted router can run: gain2 calibration
    curves, and a latent head marked trained (the fitted router's token scores come from it)."""
    from conftest import gain2_calibration
    from model_helpers import small_adaptive_model

    from tokenizer.checkpoint import save_tokenizer

    m = small_adaptive_model()
    m.set_gain2(gain2_calibration())
    m.latent_head_steps.fill_(1)
    path = tmp_path_factory.mktemp("ckpt") / "tiny-adaptive-fit.safetensors"
    save_tokenizer(m, path)
    return str(path)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five 10-frame videos (two 5-frame clips each), calm and busy."""
    d = tmp_path_factory.mktemp("corpus")
    for i in range(5):
        make = moving_square_frames if i % 2 == 0 else noise_frames
        write_video(d / f"v{i:02d}.mp4", make(10, 32, 32, seed=i), fps=10)
    return d


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One 5-frame video: one clip, too few for a fit."""
    d = tmp_path_factory.mktemp("tiny")
    write_video(d / "only.mp4", moving_square_frames(5, 32, 32), fps=10)
    return d


def _tokenize(folder: Path, out: Path, ckpt: str, *extra: str) -> tuple[int, str]:
    res = CliRunner().invoke(main, ["tokenize", str(folder), str(out), "--checkpoint", ckpt, *DECODE_ARGS, *extra],
                             catch_exceptions=False)
    return res.exit_code, res.output


def _json(text: str) -> dict:
    return json.loads(text[text.index("{"):])


def _error_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


def _drop_last_shard(out: Path) -> None:
    """As if the job died before its last shard committed and before the manifest."""
    last = max(int(p.stem.split("-")[1]) for p in (out / "tokens").glob("part-*.parquet"))
    for name in (MANIFEST_NAME, commit_marker(last), token_part(last)):
        (out / name).unlink()


def test_fit_is_recorded_resumed_and_refused(corpus, checkpoint, local_ray, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    out = tmp_path / "ds"
    code, text = _tokenize(corpus, out, checkpoint, "--fit-router", "8", "--json")
    assert code == 0, text
    doc = _json(text)
    assert doc["router"] == "gain2" and doc["beta"] == 0.5
    assert doc["fit"]["clips"] == 8 and doc["fit"]["requested"] == 8 and doc["fit"]["videos"] == 4
    assert doc["fit"]["describe"].startswith("gain2 fitted on 8 clips")
    assert "on a sample of 8 clips from 4 videos" in caplog.text
    job_bytes = (out / "job.json").read_bytes()
    fit = json.loads(job_bytes)["content"]["tokenize"]["fit"]
    assert {k: fit[k] for k in ("clips", "clips_per_video", "seed")} == {"clips": 8, "clips_per_video": 2, "seed": 0}
    assert fit["fit"]["router"] == "gain2" and fit["fit"]["clips"] == 8 and len(fit["fit"]["curves"]) == 8
    assert json.loads((out / MANIFEST_NAME).read_text())["params"]["tokenize"]["fit"] == fit
    rows = read_rows(str(out))
    assert len(rows) == 10 and all(r["beta"] == 0.5 for r in rows)

    # a resume (with the same option, or none) re-uses the recorded fit: no sample is drawn again
    for extra in (["--fit-router", "8"], []):
        _drop_last_shard(out)
        caplog.clear()
        code, text = _tokenize(corpus, out, checkpoint, "--json", *extra)
        assert code == 0, text
        assert _json(text)["shards_skipped"] == 2 and _json(text)["shards_run"] == 1
        assert "resuming with its recorded gain2 router fit on 8 clips; not fitting again" in caplog.text
        assert "on a sample of" not in caplog.text and "tuning sample" not in caplog.text
        assert (out / "job.json").read_bytes() == job_bytes
        assert read_rows(str(out)) == rows  # the dataset an uninterrupted run wrote

    # another fit, or none, is refused in one line before Ray
    code, text = _tokenize(corpus, out, checkpoint, "--fit-router", "6")
    assert code == 1
    assert _error_line(text) == (
        f"Error: {out} was made with --fit-router 8, not --fit-router 6; rerun with --fit-router 8 (or without "
        "--fit-router) to resume, or pass --overwrite to start over")
    code, text = _tokenize(corpus, out, checkpoint, "--fit-router", "0")
    assert code == 1 and "made with --fit-router 8, not --fit-router 0; rerun with" in _error_line(text)

    # --overwrite fits again, for the new request
    code, text = _tokenize(corpus, out, checkpoint, "--fit-router", "6", "--overwrite", "--json")
    assert code == 0, text
    refit = json.loads((out / "job.json").read_text())["content"]["tokenize"]["fit"]
    assert refit["clips"] == 6 and refit["fit"]["clips"] == 6 and _json(text)["fit"]["clips"] == 6
    res = CliRunner().invoke(main, ["inspect", str(out)])
    assert res.exit_code == 0 and "router       gain2, beta 0.5, its per-corpus fit (6 clips)" in res.output


def test_fit_options_are_refused_before_ray(corpus, tiny_corpus, checkpoint, tmp_path):
    out = tmp_path / "never"
    code, text = _tokenize(corpus, out, checkpoint, "--router", "fitted", "--fit-router", "0")
    assert code == 2 and "Error: the fitted router needs a per-corpus fit: give --fit-router N" in text
    code, text = _tokenize(corpus, out, checkpoint, "--router", "gain", "--fit-router", "8")
    assert code == 2 and "Error: --fit-router 8: the gain router takes no per-corpus fit" in text
    code, text = _tokenize(corpus, out, checkpoint, "--fit-router", "2")
    assert code == 2 and "--fit-router must be 0 (no fit) or at least 4 clips, got 2" in text
    # beta tuning of a router that fits per corpus runs on its fit: it needs one
    code, text = _tokenize(corpus, out, checkpoint, "--beta", "auto", "--target-rate", "0.3", "--router", "gain2",
                           "--fit-router", "0")
    assert code == 2 and "--beta auto with the gain2 router tunes beta on its per-corpus fit: give --fit-router N" in text
    code, text = _tokenize(corpus, out, checkpoint, "--beta", "auto", "--tuning", str(out / "tuning.json"),
                           "--router", "fitted", "--fit-router", "0")
    assert code == 2 and "--beta auto with the fitted router tunes beta on its per-corpus fit" in text
    # an asked fit on a corpus too small for it: one line naming the corpus and its count
    code, text = _tokenize(tiny_corpus, out, checkpoint, "--fit-router", "8")
    assert code == 1
    assert _error_line(text) == (
        f"Error: corpus {tiny_corpus} gives 1 clips for the gain2 router's fit (--fit-router 8); a fit needs at "
        "least 4: pass --fit-router 0 to tokenize without one")
    # the fitted router cannot route without one, even when the fit is only the default
    code, text = _tokenize(tiny_corpus, out, checkpoint, "--router", "fitted")
    assert code == 1 and "the fitted router cannot route without one" in _error_line(text)
    assert not out.exists()


def test_beta_tuned_on_the_fit_is_recorded_and_resumed(corpus, checkpoint, local_ray, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    out = tmp_path / "ds"
    args = ("--router", "gain2", "--beta", "auto", "--target-rate", "0.3", "--fit-router", "8")
    code, text = _tokenize(corpus, out, checkpoint, *args, "--json")
    assert code == 0, text
    assert "on a sample of 8 clips from 4 videos" in caplog.text  # one sample, fitted once, tuned on the fit
    tok = json.loads((out / "job.json").read_text())["content"]["tokenize"]
    tuning, fit = tok["tuning"], tok["fit"]
    assert tuning["mean_info_source"] == "fit" and tuning["expected_info"] is None and tok["expected_info"] is None
    assert tuning["router"] == "gain2" and tuning["sample_clips"] == 8 and tuning["rate"] <= 0.3
    assert tok["beta"] == tuning["beta"] and fit["clips"] == 8 and fit["fit"]["router"] == "gain2"
    report = json.loads((out / "tuning.json").read_text())
    assert report["result"]["beta"] == tuning["beta"] and report["sample"]["clips"] == 8
    rows = read_rows(str(out))
    assert all(r["beta"] == pytest.approx(tuning["beta"], rel=1e-6) for r in rows)
    job_bytes = (out / "job.json").read_bytes()

    _drop_last_shard(out)  # a resume re-uses both records: no sample, no fit, no tuning
    caplog.clear()
    code, text = _tokenize(corpus, out, checkpoint, *args, "--json")
    assert code == 0, text
    assert "resuming with the recorded tuning" in caplog.text and "on a sample of" not in caplog.text
    assert (out / "job.json").read_bytes() == job_bytes and read_rows(str(out)) == rows
    code, text = _tokenize(corpus, out, checkpoint, "--router", "gain2", "--beta", "auto", "--target-rate", "0.4")
    assert code == 1 and "was tuned with another request (target_value: 0.3 -> 0.4)" in _error_line(text)

    res = CliRunner().invoke(main, ["tune-beta", str(corpus), "--checkpoint", checkpoint, "--router", "gain2",
                                    "--resolution", "32", "--clip-frames", "5", "--device", "cpu", "--sample", "8",
                                    "--tune-clips-per-video", "2", "--target-rate", "0.3", "--json",
                                    "--report", str(tmp_path / "report")])
    assert res.exit_code == 0, res.output
    alone = json.loads(res.output[res.output.index("{"):])["result"]
    assert alone["beta"] == tuning["beta"] and alone["mean_info_source"] == "fit"  # the same sample, the same fit
    # its report applied to a new dataset: its beta, with the job's own fit
    code, text = _tokenize(corpus, tmp_path / "from-report", checkpoint, "--router", "gain2", "--beta", "auto",
                           "--tuning", str(tmp_path / "report" / "tuning.json"), "--fit-router", "8", "--json")
    assert code == 0, text
    tok = json.loads((tmp_path / "from-report" / "job.json").read_text())["content"]["tokenize"]
    assert tok["tuning"]["source"] == "report" and tok["tuning"]["expected_info"] is None
    assert tok["beta"] == tuning["beta"] and tok["fit"]["clips"] == 8
    reachable = alone["reachable_psnr"]
    target = round((reachable[0] + reachable[1]) / 2, 2)
    res = CliRunner().invoke(main, ["tune-beta", str(corpus), "--checkpoint", checkpoint, "--router", "fitted",
                                    "--resolution", "32", "--clip-frames", "5", "--device", "cpu", "--sample", "8",
                                    "--tune-clips-per-video", "2", "--target-psnr", str(target)])
    assert res.exit_code == 0, res.output
    assert "on the fitted router's fit of the sample on 8 clips" in res.output
    assert "(read off 8 clips' measured curves)" in res.output


def test_default_fit_on_a_tiny_corpus_warns_and_goes_on(tiny_corpus, checkpoint, local_ray, tmp_path, caplog):
    out = tmp_path / "ds"
    code, text = _tokenize(tiny_corpus, out, checkpoint, "--json")
    assert code == 0, text
    assert f"corpus {tiny_corpus} gives 1 clips for the gain2 router's fit (--fit-router 64)" in caplog.text
    assert "tokenizing without a per-corpus fit" in caplog.text
    tok = json.loads((out / "job.json").read_text())["content"]["tokenize"]
    assert tok["fit"] is None and tok["beta"] == 0.5 and _json(text)["fit"] is None


def test_defaults_of_a_new_dataset_and_an_old_one_resuming(corpus, checkpoint, local_ray, tmp_path):
    # a new dataset: beta 0.5, and gain2 fitted on the corpus (the default 64 clips; it has 10)
    out = tmp_path / "new"
    code, text = _tokenize(corpus, out, checkpoint)
    assert code == 0, text
    assert "gain2 router, beta 0.5 with its per-corpus fit (10 clips))" in " ".join(text.split())
    tok = json.loads((out / "job.json").read_text())["content"]["tokenize"]
    assert tok["beta"] == 0.5 and tok["fit"]["clips"] == 64 and tok["fit"]["fit"]["clips"] == 10
    rows = read_rows(str(out))
    assert sum(r["rate"] for r in rows) / len(rows) < 0.8  # issue 25: the bare command adapts

    # a dataset made before these defaults (beta 1, no fit, no "fit" key in job.json) resumes with the
    # same command, which names neither
    old = tmp_path / "old"
    code, text = _tokenize(corpus, old, checkpoint, "--beta", "1", "--fit-router", "0", "--json")
    assert code == 0, text
    job = json.loads((old / "job.json").read_text())
    assert job["content"]["tokenize"].pop("fit") is None
    (old / "job.json").write_text(json.dumps(job, indent=1, sort_keys=True))
    job_bytes = (old / "job.json").read_bytes()
    rows = read_rows(str(old))
    _drop_last_shard(old)
    code, text = _tokenize(corpus, old, checkpoint, "--fit-router", "8")  # a fit it was not made with
    assert code == 1 and "Error: " + f"{old} was made with no per-corpus fit, not --fit-router 8" in text
    code, text = _tokenize(corpus, old, checkpoint, "--json")
    assert code == 0, text
    assert f"{old}: resuming with beta 1 it was made with" in text
    assert _json(text)["shards_skipped"] == 2 and _json(text)["beta"] == 1.0 and _json(text)["fit"] is None
    assert (old / "job.json").read_bytes() == job_bytes and read_rows(str(old)) == rows


def test_fitted_router_routes_with_its_recorded_fit(corpus, checkpoint, local_ray, tmp_path):
    out = tmp_path / "ds"
    code, text = _tokenize(corpus, out, checkpoint, "--router", "fitted", "--fit-router", "8", "--json")
    assert code == 0, text
    doc = _json(text)
    assert doc["router"] == "fitted" and doc["fit"]["describe"].startswith("fitted fitted on 8 clips (curve prediction")
    fit = json.loads((out / "job.json").read_text())["content"]["tokenize"]["fit"]["fit"]
    assert fit["router"] == "fitted" and fit["predictor"] is not None
    rows = read_rows(str(out))
    assert len(rows) == 10 and all(r["beta"] == 0.5 for r in rows)
    assert 0.0625 <= min(r["rate"] for r in rows) and sum(r["rate"] for r in rows) / len(rows) < 1


def test_submit_forwards_and_checks_the_fit_option(corpus, checkpoint):
    from jobs.submit_cmd import job_argv

    assert job_argv("in", "out", {"fit_router": 8, "beta": None}, None) == ["in", "out", "--fit-router", "8"]
    assert job_argv("in", "out", {"fit_router": 0}, None) == ["in", "out", "--fit-router", "0"]  # no fit, said so
    assert job_argv("in", "out", {"fit_router": None}, None) == ["in", "out"]  # the cluster's run decides
    res = CliRunner().invoke(main, ["submit", str(corpus), "out", "--address", "http://127.0.0.1:1", "--checkpoint",
                                    checkpoint, "--router", "latent", "--fit-router", "8"])
    assert res.exit_code == 2 and "--fit-router 8: the latent router takes no per-corpus fit" in res.output
