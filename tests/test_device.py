from __future__ import annotations

import warnings

import pytest
import torch

from tokenizer.device import mixed_precision, resolve_device


def test_resolve_device_on_a_machine_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    for spec in ("cuda", "cuda:1"):
        with pytest.raises(ValueError, match=f"device '{spec}' asks for CUDA, but this machine has no usable CUDA"):
            resolve_device(spec)
    for spec in ("gpu", "tpu", "cuda:x", ""):
        with pytest.raises(ValueError, match=f"device must be auto, cpu, cuda or cuda:N, got '{spec}'"):
            resolve_device(spec)


def test_resolve_device_picks_and_bounds_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto") == torch.device("cuda", 0)
    assert resolve_device("cuda") == torch.device("cuda", 0)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(ValueError, match=r"device 'cuda:2': this machine has 2 CUDA device\(s\), cuda:0..cuda:1"):
        resolve_device("cuda:2")


def test_mixed_precision_is_bfloat16_autocast_on_cuda_only():
    x = torch.randn(4, 4)
    with mixed_precision(torch.device("cpu")):
        assert not torch.is_autocast_enabled("cpu")
        assert (x @ x).dtype == torch.float32
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a CPU-only torch warns that CUDA autocast is disabled
        ctx = mixed_precision(torch.device("cuda", 0))
        off = mixed_precision(torch.device("cuda", 0), enabled=False)
    assert isinstance(ctx, torch.autocast) and ctx.device == "cuda" and ctx.fast_dtype == torch.bfloat16
    assert not isinstance(off, torch.autocast)


def test_configs_check_the_device_spelling_without_hardware():
    from pipeline.tokenize.step import TokenizeConfig
    from tokenizer.train.trainer import TrainConfig

    assert TokenizeConfig(device="cuda:3").device == "cuda:3"  # a GPU actor may run elsewhere
    for make in (lambda: TokenizeConfig(device="gpu"), lambda: TrainConfig(device="gpu")):
        with pytest.raises(ValueError, match="device must be auto, cpu, cuda or cuda:N, got 'gpu'"):
            make()
