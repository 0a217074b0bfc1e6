"""The router interface: which tokens a clip keeps (per-token scores), how many (its budget),
whether a model or checkpoint can run it, how it is calibrated and what it costs.

A router is a stateless object; its state (E[signal], a trained head, calibration curves) lives
on the `AdaptiveTokenizer` and in its checkpoint. The shared budget formula of InfoTok
(arXiv 2512.16975), r_x = clip(beta * signal(x) / E[signal], 1/16, 1), is the default `budget`;
a router with another rule overrides it. Torch is imported late: the registry, which imports
every router, is read by the CLI before any model is needed.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Protocol

if TYPE_CHECKING:
    import torch

    from tokenizer.adaptive.curve_fit import CorpusFit
    from tokenizer.adaptive.model import AdaptiveTokenizer
    from tokenizer.adaptive.routers.gain2_curves import Gain2Calibration
    from tokenizer.nn.model import Encoding


@dataclass(frozen=True)
class Scored:
    """Result of `Router.score` (and `AdaptiveTokenizer.score`): a router's two answers before the budget.

    encoding: the base `Encoding`; scores: (B, t, h, w) float32 token scores (higher = keep
    first); signal: (B,) the clip's budget signal (I(x), s or s^; gain2: the slope with its lowest
    probe, for the record); router: its name. gain2 only: curve (B, K) PSNR in dB at curve_rates
    (its probes and 1), from which its budget comes. coverage: the weight of the covering keep
    (`tokenizer.adaptive.coverage`; 0: the plain top n by score).
    """

    encoding: Encoding
    scores: torch.Tensor
    signal: torch.Tensor
    router: str
    curve: torch.Tensor | None = None
    curve_rates: tuple[float, ...] = ()
    coverage: float = 0.0

    def keep(self, n_keep: torch.Tensor) -> torch.Tensor:
        """The tokens each clip keeps at its count n_keep (B,): (B, t, h, w) bool."""
        from tokenizer.adaptive.coverage import covering_keep

        return covering_keep(self.scores, n_keep, self.coverage)


class RouterState(Protocol):
    """The adaptive state a readiness check reads, of a model in memory or of a checkpoint file
    (tensor names without the checkpoint's `adaptive.` prefix)."""

    @property
    def where(self) -> str:
        """How a message names it: 'this checkpoint' or 'checkpoint PATH'."""
        ...

    def has(self, name: str) -> bool:
        """Whether the tensor is there."""
        ...

    def value(self, name: str) -> float:
        """A scalar tensor's value; NaN when it is not there."""
        ...


class Router(ABC):
    """One router. Class attributes state its facts; methods take the model they run on.

    name: its registry name, recorded in datasets. signal_name: its E[signal] as printed.
    how_to_set: how a user sets its E[signal]. mean_buffers: the model's (E[signal], clip count)
    buffers, None when its budget comes from elsewhere. budgets_from_curves: its budget comes
    from each clip's curve (`Scored.curve`), not one scalar signal (beta tuning then runs on its
    per-corpus fit, `tokenizer.tuning.fit_tune`). fits_corpus: it takes a per-corpus fit
    (`--fit-router N`); needs_fit: it cannot route without one.
    """

    name: ClassVar[str]
    signal_name: ClassVar[str]
    how_to_set: ClassVar[str]
    mean_buffers: ClassVar[tuple[str, str] | None] = None
    budgets_from_curves: ClassVar[bool] = False
    fits_corpus: ClassVar[bool] = False
    needs_fit: ClassVar[bool] = False

    # ---- which tokens, and the signal --------------------------------------------------
    @abstractmethod
    def score(self, model: AdaptiveTokenizer, video: torch.Tensor, encoding: Encoding) -> Scored:
        """Token scores (B, t, h, w) and signal (B,) of video (B, 3, T, H, W) in [-1, 1]."""

    @abstractmethod
    def passes(self, model: AdaptiveTokenizer) -> tuple[float, float, float]:
        """Passes per clip (encoder, decoder, compressor), the final compressor pass included."""

    # ---- how many --------------------------------------------------------------------
    def budget(self, model: AdaptiveTokenizer, scored: Scored, betas: torch.Tensor,
               mean_info: float | None = None) -> torch.Tensor:
        """The clips' rates (B,) in [1/16, 1] at betas (B,): r = clip(beta * signal / E[signal], 1/16, 1)
        with the model's E[signal] unless mean_info overrides it."""
        from tokenizer.adaptive.router import clip_rate

        m = self.check_mean(self.mean_signal(model) if mean_info is None else mean_info)
        return clip_rate(scored.signal, betas, m)

    def check_route(self, model: AdaptiveTokenizer, mean_info: float | None) -> None:
        """Refuse, before any model pass, what `budget` would refuse (a missing E[signal])."""
        self.check_mean(self.mean_signal(model) if mean_info is None else mean_info)

    def budget_basis(self, expected_info: float, fit_clips: int | None = None) -> str:
        """What a dataset's budgets were set from, as summaries print it: its E[signal] and value (a
        router that fits per corpus: its fit on `fit_clips` clips, when the dataset has one)."""
        return f"{self.signal_name} {expected_info:.6g}"

    def check_mean(self, mean_info: float) -> float:
        """E[signal] as a float; raise ValueError, saying how to set it, unless finite and > 0."""
        m = float(mean_info)
        if not (math.isfinite(m) and m > 0.0):
            raise ValueError(f"{self.signal_name} of the {self.name} router must be a finite positive number, "
                             f"got {mean_info!r}; {self.how_to_set}")
        return m

    # ---- state on the model: E[signal] and readiness ------------------------------------
    def _buffers(self) -> tuple[str, str]:
        if self.mean_buffers is None:
            raise TypeError(f"the {self.name} router keeps no E[signal] buffer on the model")
        return self.mean_buffers

    def mean_signal(self, model: AdaptiveTokenizer) -> float:
        """The router's E[signal] on the model (NaN when never trained or calibrated)."""
        return float(model.get_buffer(self._buffers()[0]))

    def signal_count(self, model: AdaptiveTokenizer) -> int:
        """How many clips the router's E[signal] was measured on."""
        return int(model.get_buffer(self._buffers()[1]))

    def set_mean(self, model: AdaptiveTokenizer, value: float, count: int) -> None:
        """Set the router's E[signal] from a calibration pass over `count` clips."""
        mean, n = self._buffers()
        model.get_buffer(mean).fill_(self.check_mean(value))
        model.get_buffer(n).fill_(int(count))

    def problem(self, state: RouterState, calibrated: bool = True, need_mean: bool = False) -> str | None:
        """Why the model or checkpoint cannot route with this router (None: it can); with
        `calibrated`, what the budget needs besides E[signal] (gain2's curves); with `need_mean`,
        its E[signal]. The one readiness check, for models and checkpoint files alike."""
        if need_mean and self.mean_buffers is not None:
            mean = state.value(self.mean_buffers[0])
            if not (math.isfinite(mean) and mean > 0):
                return (f"{state.where} has no {self.signal_name} for the {self.name} router; run `infotok "
                        f"calibrate --router {self.name} --write-checkpoint NEW` (or pass a tuned beta with "
                        "--beta auto)")
        return None

    # ---- calibration (`infotok calibrate`) ----------------------------------------------
    def fresh_measurement(self, model: AdaptiveTokenizer) -> AbstractContextManager[None]:
        """Scoring calibration clips inside it measures afresh, not with the model's stored calibration."""
        return nullcontext()

    def calibration(self, model: AdaptiveTokenizer, curves: list[torch.Tensor]) -> Gain2Calibration | None:
        """What the calibration clips' measured curves (each batch's `Scored.curve`, for a router that
        measures one) give besides their mean signal: None, or gain2's calibration curves."""
        return None

    def write_calibration(self, model: AdaptiveTokenizer, mean_signal: float, count: int,
                          calibration: Gain2Calibration | None) -> None:
        """Store a calibration on the model: by default its E[signal], the clips' mean signal."""
        self.set_mean(model, mean_signal, count)

    # ---- the per-corpus fit (`--fit-router N`) --------------------------------------------
    def fit_corpus(self, model: AdaptiveTokenizer, videos: list[torch.Tensor]) -> CorpusFit:
        """Fit the router on a corpus sample: batches of video (B, 3, T, H, W) in [-1, 1]."""
        raise ValueError(f"the {self.name} router takes no per-corpus fit (--fit-router); "
                         "use --router gain2 or --router fitted")

    def use_fit(self, model: AdaptiveTokenizer, fit: CorpusFit | None) -> None:
        """Route with `fit` (None: the checkpoint's own state again)."""
        raise ValueError(f"the {self.name} router takes no per-corpus fit (--fit-router)")
