"""`infotok tune-beta` on real mp4 corpora, and `infotok tokenize --beta auto` on a real
in-process Ray: the tuning is recorded in the dataset, and a resume never tunes again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from pipeline_helpers import read_rows

from jobs.cli import main
from media import moving_square_frames, noise_frames, write_video

pytestmark = pytest.mark.timeout(600)

# The ELBO router: a random-init model gains nothing from tokens, so under `gain` every clip would
# sit at the floor and no beta could reach a target (test_routers covers tuning by router).
DECODE_ARGS = ["--resolution", "32", "--clip-frames", "5", "--device", "cpu", "--router", "elbo"]


@pytest.fixture(scope="module")
def adaptive_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A random-init tiny InfoTok checkpoint (non-identity adaptive layer, E[I] set)."""
    import torch

    from tokenizer.adaptive.modules import ADAPTIVE_PRESETS
    from tokenizer.adaptive.model import AdaptiveTokenizer
    from tokenizer.checkpoint import save_tokenizer
    from tokenizer.config import PRESETS
    from tokenizer.nn.model import VideoTokenizer

    torch.manual_seed(0)
    m = AdaptiveTokenizer(VideoTokenizer(PRESETS["tiny"]), ADAPTIVE_PRESETS["tiny"]).eval()
    with torch.no_grad():
        for net in (m.compressor.net, m.decompressor.net):
            net.out.weight.normal_(0, 0.05)
    m.set_mean_info(0.54, 100)
    path = tmp_path_factory.mktemp("ckpt") / "tiny-adaptive-random.safetensors"
    save_tokenizer(m, path)
    return str(path)


@pytest.fixture(scope="module")
def corpora(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two corpora of clearly different complexity: a moving square vs noise (10 frames = 2 clips each)."""
    out = {}
    for name, make in (("calm", moving_square_frames), ("busy", noise_frames)):
        d = tmp_path_factory.mktemp(name)
        for i in range(5):
            write_video(d / f"{name}{i:02d}.mp4", make(10, 32, 32, seed=i), fps=10)
        out[name] = d
    return out


def _invoke(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    return result.exit_code, result.output


def _tune(folder: Path, ckpt: str, *extra: str) -> dict:
    code, out = _invoke(["tune-beta", str(folder), "--checkpoint", ckpt, *DECODE_ARGS, "--sample", "6",
                         "--tune-clips-per-video", "2", "--psnr-clips", "2", "--json", *extra])
    assert code == 0, out
    return json.loads(out)


def test_tune_beta_writes_a_deterministic_report(corpora, adaptive_checkpoint, tmp_path):
    report = _tune(corpora["calm"], adaptive_checkpoint, "--target-rate", "0.3", "--report", str(tmp_path / "rep"))
    r = report["result"]
    assert report["format"] == "infotok-beta-tuning" and report["sample"]["seed"] == 0
    assert len(report["sample"]["ids"]) == 6 and report["sample"]["videos_listed"] == 5
    assert {i["clip_index"] for i in report["sample"]["ids"]} <= {0, 1}
    assert 0 < r["beta"] <= 1 and r["rate"] <= 0.3 and r["rate"] > 0.25
    assert r["rate_ci"][0] <= r["rate"] <= r["rate_ci"][1]
    assert r["mean_info_source"] == "dataset" and r["psnr_clips"] == 2 and len(r["curve"]) >= 10
    assert (tmp_path / "rep" / "tuning.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "rep" / "tuning.json").read_text())["result"] == r
    again = _tune(corpora["calm"], adaptive_checkpoint, "--target-rate", "0.3")
    assert again["sample"]["ids"] == report["sample"]["ids"] and again["result"]["beta"] == r["beta"]
    other = _tune(corpora["calm"], adaptive_checkpoint, "--target-rate", "0.3", "--tune-seed", "7")
    assert other["sample"]["seed"] == 7 and other["sample"]["ids"] != report["sample"]["ids"]


def test_human_output_says_how_to_apply_the_tuning(corpora, adaptive_checkpoint, tmp_path):
    # tune-beta once printed a beta that missed its own target when passed alone to tokenize: that
    # beta belongs with the sample's E[I], not the checkpoint's
    result = CliRunner().invoke(main, ["tune-beta", str(corpora["calm"]), "--checkpoint", adaptive_checkpoint,
                                       *DECODE_ARGS, "--sample", "6", "--tune-clips-per-video", "2",
                                       "--psnr-clips", "2", "--target-rate", "0.3", "--report", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    report = str(tmp_path / "r" / "tuning.json")
    assert f"apply it: infotok tokenize {corpora['calm']} OUTPUT --router elbo --beta auto --tuning {report}" in out
    assert "alone would use the checkpoint's E[I] 0.54," in out
    assert "warning: the sample has only 6 clips" in out


def test_two_corpora_get_different_betas(corpora, adaptive_checkpoint):
    betas, info = {}, {}
    for name in ("calm", "busy"):
        for source in ("dataset", "checkpoint"):
            r = _tune(corpora[name], adaptive_checkpoint, "--target-rate", "0.3", "--mean-info", source)["result"]
            assert r["rate"] <= 0.3 and r["rate"] > 0.25
            betas[name, source] = r["beta"]
            info[name] = sum(r["clip_info"]) / len(r["clip_info"])
    assert betas["calm", "dataset"] != betas["busy", "dataset"]
    # with one E[I] for both, the corpus with less information per clip needs a larger beta for the same rate
    # (a random-init model: which corpus that is says nothing about content, only about the model)
    low, high = sorted(info, key=info.get)
    assert betas[low, "checkpoint"] > betas[high, "checkpoint"]


@pytest.mark.parametrize("args, message", [
    (["--target-rate", "0.02"], r"target rate 0.02 is out of reach: beta in \(0, 1\] gives a mean rate from 0.0625"),
    (["--target-rate", "1.01"], r"target rate 1.01 is out of reach: .* to [01]\.\d+ \(beta = 1\)"),
    (["--target-psnr", "99"], r"target PSNR 99 dB is out of reach: .* keeping every token gives"),
])
def test_unreachable_targets_are_clear_errors(corpora, adaptive_checkpoint, args, message):
    import re

    code, out = _invoke(["tune-beta", str(corpora["calm"]), "--checkpoint", adaptive_checkpoint, *DECODE_ARGS,
                         "--sample", "4", *args])
    assert code == 1
    assert re.search(message, " ".join(out.split())), out


def test_fixed_rate_checkpoint_and_bad_options_are_refused(corpora, tiny_checkpoint, adaptive_checkpoint):
    code, out = _invoke(["tune-beta", str(corpora["calm"]), "--checkpoint", tiny_checkpoint, *DECODE_ARGS,
                         "--target-rate", "0.3"])
    assert code == 1 and "needs an adaptive (InfoTok) checkpoint" in out
    code, out = _invoke(["tune-beta", str(corpora["calm"]), "--target-rate", "0.3", "--target-psnr", "20"])
    assert code == 2 and "give one target" in out
    code, out = _invoke(["tokenize", str(corpora["calm"]), "/tmp/never", "--target-rate", "0.3"])
    assert code == 2 and "need --beta auto" in out
    code, out = _invoke(["tokenize", str(corpora["calm"]), "/tmp/never", "--beta", "auto"])
    assert code == 2 and "--beta auto needs one of" in out
    code, out = _invoke(["tokenize", str(corpora["calm"]), "/tmp/never", "--beta", "1.5"])
    assert code == 2 and "beta must be in (0, 1]" in out


def _tokenize(folder: Path, out: Path, ckpt: str, *extra: str) -> tuple[int, str]:
    return _invoke(["tokenize", str(folder), str(out), "--checkpoint", ckpt, *DECODE_ARGS, "--shard-size", "3",
                    "--batch-size", "3", "--json", *extra])


def test_tokenize_beta_auto_records_tuning_and_resume_keeps_it(corpora, adaptive_checkpoint, local_ray, tmp_path,
                                                                 monkeypatch):
    out = tmp_path / "ds"
    auto = ["--beta", "auto", "--target-rate", "0.3", "--tune-sample", "6", "--tune-clips-per-video", "2",
            "--psnr-clips", "2"]
    code, text = _tokenize(corpora["busy"], out, adaptive_checkpoint, *auto)
    assert code == 0, text
    report = json.loads((out / "tuning.json").read_text())
    assert (out / "tuning.png").exists()
    params = json.loads((out / "dataset.json").read_text())["params"]["tokenize"]
    tuning = params["tuning"]
    assert params["beta"] == tuning["beta"] == report["result"]["beta"]
    assert params["expected_info"] == tuning["expected_info"] == report["result"]["mean_info"]
    assert tuning["source"] == "tuned" and tuning["target_kind"] == "rate" and tuning["target_value"] == 0.3
    assert tuning["rate"] == report["result"]["rate"] and tuning["tokenizer_id"] == report["tokenizer_id"]
    rows = read_rows(str(out))
    assert len(rows) == 10 and all(r["beta"] == pytest.approx(tuning["beta"], rel=1e-6) for r in rows)  # float32
    if any(r["rate"] < 1 for r in rows):  # the pipeline's tokenizer is adaptive: its budgets follow the tuning
        import torch

        from tokenizer.adaptive.router import budget_tokens
        from tokenizer.adaptive.routers.registry import budget_rate

        info = torch.tensor([r["info"] for r in rows], dtype=torch.float32)
        n = budget_tokens(budget_rate(info, tuning["beta"], tuning["expected_info"]), 2 * 4 * 4)
        assert [r["n_tokens"] for r in rows] == n.tolist()  # the tuned beta and E[I], exactly
        assert abs(sum(r["rate"] for r in rows) / len(rows) - 0.3) <= 0.05

    # a resume re-uses the recorded tuning: tuning again would fail here
    def no_tuning(*args: object, **kwargs: object) -> None:
        raise AssertionError("resume must not tune again")

    monkeypatch.setattr("pipeline.job.auto_beta.run_tuning", no_tuning)
    (out / "dataset.json").unlink()  # as if the job died before finalizing
    code, text = _tokenize(corpora["busy"], out, adaptive_checkpoint, *auto)
    assert code == 0, text
    assert json.loads(text)["shards_skipped"] == 2
    assert json.loads((out / "dataset.json").read_text())["params"]["tokenize"]["tuning"] == tuning
    # another request, or a fixed beta, on the tuned dataset is refused
    code, text = _tokenize(corpora["busy"], out, adaptive_checkpoint, "--beta", "auto", "--target-rate", "0.4")
    assert code == 1 and "was tuned with another request" in text and "target_value: 0.3 -> 0.4" in text
    code, text = _tokenize(corpora["busy"], out, adaptive_checkpoint, "--beta", str(tuning["beta"]))
    assert code == 1 and "other settings" in text and "tokenize.tuning" in text
    # --overwrite starts over and tunes for the new request
    monkeypatch.undo()
    code, text = _tokenize(corpora["busy"], out, adaptive_checkpoint, "--beta", "auto", "--target-rate", "0.4",
                           "--tune-sample", "6", "--psnr-clips", "0", "--overwrite")
    assert code == 0, text
    retuned = json.loads((out / "dataset.json").read_text())["params"]["tokenize"]["tuning"]
    assert retuned["target_value"] == 0.4 and retuned["rate"] <= 0.4 and retuned["psnr"] is None
    assert json.loads((out / "tuning.json").read_text())["result"]["beta"] == retuned["beta"]


def test_tokenize_with_a_tuning_report(corpora, adaptive_checkpoint, tiny_checkpoint, local_ray, tmp_path):
    _tune(corpora["calm"], adaptive_checkpoint, "--target-bpp16", "0.5", "--report", str(tmp_path / "rep"))
    report = json.loads((tmp_path / "rep" / "tuning.json").read_text())
    uri = str(tmp_path / "rep" / "tuning.json")
    code, text = _tokenize(corpora["calm"], tmp_path / "ds", adaptive_checkpoint, "--beta", "auto", "--tuning", uri)
    assert code == 0, text
    tuning = json.loads((tmp_path / "ds" / "dataset.json").read_text())["params"]["tokenize"]["tuning"]
    assert tuning["source"] == "report" and tuning["report_uri"] == uri and tuning["target_kind"] == "bpp16"
    assert tuning["beta"] == report["result"]["beta"] and tuning["expected_info"] == report["result"]["mean_info"]
    # a report made with another tokenizer or other decode settings does not fit the job
    code, text = _tokenize(corpora["calm"], tmp_path / "ds2", tiny_checkpoint, "--beta", "auto", "--tuning", uri)
    assert code == 1 and "was made with tokenizer" in text
    code, text = _invoke(["tokenize", str(corpora["calm"]), str(tmp_path / "ds3"), "--checkpoint", adaptive_checkpoint,
                          "--resolution", "32", "--clip-frames", "9", "--device", "cpu", "--beta", "auto",
                          "--tuning", uri])
    assert code == 1 and "other decode settings: clip_frames: 5 (report) vs 9 (job)" in text
    # a fixed beta says which E[I] it is paired with (a tuned beta belongs with its tuned E[I])
    code, text = _invoke(["tokenize", str(corpora["calm"]), str(tmp_path / "ds4"), "--checkpoint", adaptive_checkpoint,
                          *DECODE_ARGS, "--shard-size", "5", "--beta", "0.5"])
    assert code == 0, text
    assert "beta 0.5 with E[I] 0.54, the checkpoint's" in " ".join(text.split())
