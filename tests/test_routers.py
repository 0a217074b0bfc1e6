"""The three routers (elbo, gain, latent): budgets on constructed curves, the harness's oracle and
rescaled splits, calibration of E[s], the latent head's training, checkpoints with and without the
router tensors, and the router as part of a dataset's identity."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from model_helpers import small_adaptive_model

from jobs.cli import main
from schemas.tokens import TokenFileMeta
from tokenizer.adaptive.model import OPTIONAL_STATE_PREFIXES, AdaptiveTokenizer
from tokenizer.adaptive.modules import ADAPTIVE_PRESETS
from tokenizer.adaptive.router import MIN_RATE, budget_tokens
from tokenizer.adaptive.routers.gain import gain_slope
from tokenizer.adaptive.routers.registry import budget_rate
from tokenizer.checkpoint import DEFAULT_CHECKPOINT, load_tokenizer, save_tokenizer
from tokenizer.config import PRESETS
from tokenizer.eval.rate_distortion import video_psnr
from tokenizer.eval.splits import ORACLE_RATES, oracle_counts, rescaled_counts
from tokenizer.nn.model import VideoTokenizer
from tokenizer.data.procedural import heldout_clips
from tokenizer.train.corpus import training_batch
from tokenizer.video import frames_to_tensor


def _clips(n: int = 4, frames: int = 5, size: int = 16) -> torch.Tensor:
    return frames_to_tensor(np.stack([c for _, c in heldout_clips(n, frames, size, size)]))


def test_gain_budget_on_constructed_curves():
    # PSNR(1) and PSNR(1/16) of four clips: one cannot improve, one got worse with more tokens
    # (noise), two improve by 2.77 and 8.32 dB, i.e. slopes 1 and 3 dB per unit of ln r
    full = torch.tensor([20.0, 20.0, 30.0, 30.0])
    probe = torch.tensor([20.0, 21.0, 30.0 - math.log(16), 30.0 - 3 * math.log(16)])
    s = gain_slope(full, probe, 1 / 16)
    assert s.tolist() == pytest.approx([0.0, 0.0, 1.0, 3.0], abs=1e-5)
    rate = budget_rate(s, 1.0, mean_info=float(s.mean()), router="gain")
    assert rate.tolist() == pytest.approx([MIN_RATE, MIN_RATE, 1.0, 1.0])  # no gain: the floor
    rate = budget_rate(s, 0.25, mean_info=float(s.mean()), router="gain")
    assert rate.tolist() == pytest.approx([MIN_RATE, MIN_RATE, 0.25, 0.75])  # r proportional to s
    with pytest.raises(ValueError, match="probe rate must be in"):
        gain_slope(full, probe, 1.0)
    with pytest.raises(ValueError, match=r"E\[s\] of the gain router .* `infotok calibrate --router gain`"):
        budget_rate(s, 0.5, mean_info=float("nan"), router="gain")


def test_oracle_and_rescaled_splits_on_constructed_curves():
    n_pos = 256
    log_r = np.log(np.asarray(ORACLE_RATES))
    curves = np.stack([np.full_like(log_r, 25.0),  # cannot improve
                       30.0 + 1.0 * log_r,  # gentle
                       30.0 + 4.0 * log_r])  # steep
    total = int(0.4 * 3 * n_pos)
    oracle = oracle_counts(curves, ORACLE_RATES, total, n_pos)
    assert sum(oracle) == total
    assert oracle[0] == pytest.approx(n_pos * MIN_RATE, abs=2)  # the flat clip gets the floor
    assert oracle[2] > oracle[1] > oracle[0]

    def value(counts: list[int]) -> float:
        return float(sum(np.interp(np.log(c / n_pos), log_r, cv) for c, cv in zip(counts, curves)))

    fixed = [total // 3 + (1 if i < total % 3 else 0) for i in range(3)]
    gain = rescaled_counts(np.array([0.0, 1.0, 4.0]), total, n_pos)
    assert sum(gain) == total and gain[0] == pytest.approx(n_pos * MIN_RATE, abs=2)
    assert value(oracle) >= value(gain) - 1e-6 and value(gain) > value(fixed)
    assert video_psnr([20.0, 40.0, 30.0], ["a", "a", "b"]) == pytest.approx(
        (-10 * math.log10((1e-2 + 1e-4) / 2) + 30.0) / 2)


def test_each_router_scores_and_routes():
    m = small_adaptive_model()
    x = _clips()
    elbo, gain = m.score(x, "elbo"), m.score(x, "gain")
    assert elbo.scores.shape == gain.scores.shape == (4, 2, 2, 2)
    assert torch.equal(elbo.signal, elbo.scores.flatten(1).mean(1))  # I(x)
    assert (gain.signal >= 0).all()
    routing = m.route(x, 0.5, router="gain")
    expected = budget_tokens(budget_rate(gain.signal, 0.5, 1.5, "gain"), 8)
    assert routing.router == "gain" and routing.n_keep.tolist() == expected.tolist()
    tokens = m.tokenize(x, 0.5, router="gain")
    assert [t.info for t in tokens] == pytest.approx(gain.signal.tolist())  # the stored signal is s
    with pytest.raises(ValueError, match="latent router head is untrained"):
        m.route(x, 0.5, router="latent")
    with pytest.raises(ValueError, match="unknown router 'magic'; choose from elbo, gain, gain2, latent"):
        m.route(x, 0.5, router="magic")


def test_tuning_uses_the_router(tmp_path):
    from tokenizer.tuning.budget import TuneConfig, collect_scores

    m = small_adaptive_model()
    clips = [c for _, c in heldout_clips(4, 5, 16, 16)]
    cache = collect_scores(m, clips, batch_size=2, router="gain")
    assert torch.allclose(cache.info, m.score(frames_to_tensor(np.stack(clips)), "gain").signal)
    assert TuneConfig().router == "elbo"  # a report written before routers were recorded
    with pytest.raises(ValueError, match="unknown router"):
        TuneConfig(router="magic")


def _clip_fn(frames: int, size: int):
    def make(seed: int, n: int) -> np.ndarray:
        return training_batch(seed, 0, n, frames, size, size)
    return make


def test_router_stage_trains_the_head_and_round_trips(tmp_path):
    from tokenizer.train.router_stage import DETAIL_WEIGHTS, TARGETS, RouterStageConfig, train_router

    cfg = RouterStageConfig(init=str(DEFAULT_CHECKPOINT), clips=24, heldout=6, select_clips=8, steps=80, batch_size=8,
                            lr=3e-3, frames=5, crop=32, device="cpu")
    heldout = np.stack([c for _, c in heldout_clips(6, 5, 32, 32)])
    result = train_router(cfg, tmp_path / "run", _clip_fn(5, 32), heldout)
    assert result.final_loss < result.first_loss  # the head learns
    assert -1.0 <= result.slope_spearman <= 1.0 and 0.0 <= result.token_agreement <= 1.0
    loaded = load_tokenizer(result.weights)
    init = load_tokenizer(DEFAULT_CHECKPOINT)
    assert loaded.tokenizer_id == result.tokenizer_id != init.tokenizer_id
    m = loaded.adaptive
    assert int(m.latent_head_steps) == int(init.adaptive.latent_head_steps) + 80  # a fresh head, steps counted on
    assert m.mean_signal("gain") == result.mean_gain and m.mean_signal("latent") == result.mean_latent
    assert int(m.latent_slope.count) == 24  # the slope fit on the training clips' descriptors
    assert float(m.latent_head.detail_weight) == result.detail_weight in DETAIL_WEIGHTS
    log = json.loads((tmp_path / "run" / "router_log.json").read_text())
    assert sorted(log["detail_psnr"]) == sorted(str(w) for w in DETAIL_WEIGHTS)
    assert log["detail_psnr"][str(result.detail_weight)] == max(log["detail_psnr"].values())
    assert m.mean_signal("elbo") == init.adaptive.mean_signal("elbo")  # untouched
    x = frames_to_tensor(heldout[:3])
    a, b = m.route(x, 0.5, router="latent"), m.route(x, 0.5, router="latent")
    assert torch.equal(a.keep, b.keep) and (a.info >= 0).all()
    # the base and the adaptive layer are frozen: elbo routes exactly as before
    assert torch.equal(m.route(x, 0.5, router="elbo").keep, init.adaptive.route(x, 0.5, router="elbo").keep)
    # the measured targets are cached: a rerun does not measure them again
    stamp = (tmp_path / "run" / TARGETS).stat().st_mtime_ns
    again = train_router(cfg, tmp_path / "run", _clip_fn(5, 32), heldout)
    assert (tmp_path / "run" / TARGETS).stat().st_mtime_ns == stamp
    assert again.tokenizer_id == result.tokenizer_id  # same config, same head


def test_checkpoint_without_router_tensors_still_loads(tmp_path):
    from safetensors.torch import save_file

    from tokenizer.checkpoint import ADAPTIVE_PREFIX, checkpoint_state, tokenizer_id_of

    m = small_adaptive_model()
    path = tmp_path / "new.safetensors"
    save_tokenizer(m, path)
    with __import__("safetensors").safe_open(str(path), framework="pt") as f:
        meta = dict(f.metadata())
    optional = tuple(ADAPTIVE_PREFIX + p for p in OPTIONAL_STATE_PREFIXES)
    state = {k: v for k, v in checkpoint_state(m).items() if not k.startswith(optional)}
    meta["tokenizer_id"] = tokenizer_id_of(m.base.config, state, m.config)
    old = tmp_path / "old.safetensors"
    save_file(state, str(old), metadata=meta)
    loaded = load_tokenizer(old)
    assert loaded.tokenizer_id == meta["tokenizer_id"]
    assert loaded.adaptive.mean_signal("elbo") == pytest.approx(0.3)
    assert math.isnan(loaded.adaptive.mean_signal("gain")) and int(loaded.adaptive.latent_head_steps) == 0
    with pytest.raises(ValueError, match="untrained"):
        loaded.adaptive.check_router_ready("latent")
    # a round trip keeps each router's E[signal] exactly
    back = load_tokenizer(path).adaptive
    assert back.mean_signal("gain") == 1.5 and back.signal_count("gain") == 1


def test_calibrate_gain_router(tmp_path):
    path = tmp_path / "adaptive.safetensors"
    save_tokenizer(small_adaptive_model(), path)
    out = tmp_path / "calib.json"
    res = CliRunner().invoke(main, ["calibrate", "procedural", "--checkpoint", str(path), "--resolution", "16",
                                    "--clip-frames", "5", "--num-procedural", "4", "--router", "gain", "--out",
                                    str(out), "--write-checkpoint", str(tmp_path / "cal.safetensors")])
    assert res.exit_code == 0, res.output
    assert "E[s]" in res.output and "gain router" in res.output
    doc = json.loads(out.read_text())
    signal = small_adaptive_model().score(_clips(4), "gain").signal.double()
    assert doc["router"] == "gain" and doc["mean_info"] == pytest.approx(float(signal.mean()), rel=1e-5)
    cal = load_tokenizer(tmp_path / "cal.safetensors").adaptive
    assert cal.mean_signal("gain") == doc["mean_info"] and cal.mean_signal("elbo") == pytest.approx(0.3)
    res = CliRunner().invoke(main, ["calibrate", "procedural", "--checkpoint", str(path), "--router", "latent",
                                    "--resolution", "16", "--clip-frames", "5", "--num-procedural", "2"])
    assert res.exit_code == 2 and "latent router head is untrained" in res.output


def test_router_is_part_of_the_dataset_identity(tmp_path):
    from pipeline.tokenize.step import TokenizeConfig
    from pipeline.io.dataset import DatasetDir
    from pipeline.io.writer import check_compatible, write_shard
    from test_schemas import make_clips

    meta = TokenFileMeta("test-tok", 0.5, 0.1, router="elbo")
    ds = DatasetDir(str(tmp_path))
    write_shard(ds, 0, make_clips(1, 1), [], meta)
    check_compatible(ds, meta)
    with pytest.raises(ValueError, match="router='elbo' .* router='gain'"):
        check_compatible(ds, TokenFileMeta("test-tok", 0.5, 0.1, router="gain"))
    assert TokenFileMeta.from_dict({"tokenizer_id": "t", "beta": 0.5, "expected_info": 0.1}).router == "elbo"
    # the schema (which imports no router) checks only that a router is named; the job checks the name
    with pytest.raises(ValueError, match="router must be a non-empty string, got ''"):
        TokenFileMeta("t", 0.5, 0.1, router="")
    with pytest.raises(ValueError, match="unknown router 'magic'; choose from elbo, gain, gain2, latent"):
        TokenizeConfig(router="magic")


def test_unknown_router_is_a_usage_error(tmp_path):
    for cmd in (["tokenize", str(tmp_path), str(tmp_path / "out")], ["demo", "--out", str(tmp_path / "d")],
                ["eval", "procedural", "--methods", "fixed"],
                ["calibrate", "procedural"], ["tune-beta", str(tmp_path), "--target-rate", "0.5"]):
        res = CliRunner().invoke(main, [*cmd, "--router", "magic"])
        assert res.exit_code == 2, (cmd, res.output)
        assert "Invalid value for '--router': 'magic' is not one of 'elbo', 'gain', 'gain2', 'latent'" in res.output
    assert not (tmp_path / "out").exists() and not (tmp_path / "d").exists()


def test_uncalibrated_router_refused_before_ray(tmp_path):
    m = AdaptiveTokenizer(VideoTokenizer(PRESETS["tiny"]), ADAPTIVE_PRESETS["tiny"])
    m.set_mean_info(0.3, 1)  # E[I] only, as every checkpoint before the gain router
    path = tmp_path / "elbo-only.safetensors"
    save_tokenizer(m, path)
    (tmp_path / "videos").mkdir()
    base = ["tokenize", str(tmp_path / "videos"), str(tmp_path / "out"), "--checkpoint", str(path)]
    res = CliRunner().invoke(main, base)  # the default router, gain2
    assert res.exit_code == 1
    assert res.output.strip().splitlines() == [
        f"Error: checkpoint {path} has no gain2 calibration curves; run `infotok calibrate --router gain2 "
        "--write-checkpoint NEW` and use NEW"]
    res = CliRunner().invoke(main, [*base, "--router", "gain"])
    assert res.exit_code == 1
    assert res.output.strip().splitlines() == [
        f"Error: checkpoint {path} has no E[s] for the gain router; run `infotok calibrate --router gain "
        "--write-checkpoint NEW` (or pass a tuned beta with --beta auto)"]
    res = CliRunner().invoke(main, [*base, "--router", "latent"])
    assert res.exit_code == 1 and "has no trained latent router head" in res.output
    res = CliRunner().invoke(main, [*base, "--router", "elbo"])  # E[I] is there: the next problem is the input
    assert res.exit_code == 1 and "no videos under input" in res.output
    assert not (tmp_path / "out").exists()


def test_a_rerun_without_router_resumes_with_the_recorded_one(tmp_path):
    """The same command keeps resuming when the default router changes: an OUTPUT made with `gain`
    (or, before routers were recorded, `elbo`) is resumed with it unless --router says otherwise."""
    m = AdaptiveTokenizer(VideoTokenizer(PRESETS["tiny"]), ADAPTIVE_PRESETS["tiny"])
    m.set_mean_info(0.3, 1)  # E[I] only: any router but elbo is refused by preflight, naming itself
    path = tmp_path / "elbo-only.safetensors"
    save_tokenizer(m, path)
    (tmp_path / "videos").mkdir()
    out = tmp_path / "out"
    out.mkdir()
    base = ["tokenize", str(tmp_path / "videos"), str(out), "--checkpoint", str(path)]
    (out / "job.json").write_text(json.dumps({"content": {"tokenize": {"beta": 1.0}}}))  # from before routers
    res = CliRunner().invoke(main, base)
    assert "resuming with the elbo router it was made with" in res.output
    assert res.exit_code == 1 and "no videos under input" in res.output  # elbo passed the checkpoint check
    (out / "job.json").write_text(json.dumps({"content": {"tokenize": {"router": "gain"}}}))
    res = CliRunner().invoke(main, base)
    assert "resuming with the gain router" in res.output and "no E[s] for the gain router" in res.output
    res = CliRunner().invoke(main, [*base, "--router", "elbo"])  # named: no substitution
    assert "router it was made with" not in res.output and "no videos under input" in res.output
