"""Differential privacy: DP-SGD (Abadi et al., 2016) on the engine's one loop, through Opacus.

A private run differs from a plain one in three places, all set up here and handed to ``engine.fit``:

- **Batches** are Poisson-sampled, as the privacy accounting assumes: each step takes every private row
  independently with probability ``q = 1 / steps_per_epoch`` (``PoissonStream``; the batch size varies
  around ``batch_size``). Which rows a step takes is a pure function of (seed, stream, step), like the
  shuffled batches of a plain run, so a resumed private run draws the same batches.
- **Model and optimiser** are made private by Opacus' ``PrivacyEngine.make_private``: hooks compute each
  example's gradient, the ``DPOptimizer`` clips each to ``max_grad_norm``, sums them and adds Gaussian
  noise of std ``noise_multiplier · max_grad_norm`` before every AdamW step.
- **Accounting**: the accountant (PRV by default, Gopi et al., 2021; or RDP, Mironov 2017) records every
  step; ε for the run's δ is logged each epoch, saved in each checkpoint (so a resumed run reports the ε of
  an uninterrupted one) and written to ``test_metrics.json``.

Before training, what would break per-example gradients is changed and said so: BatchNorm (it mixes the
examples of a batch) becomes GroupNorm through the encoder's own ``norm=group`` option, and in-place
activations, which break the backward hooks Opacus relies on (Opacus issue #828), are made out-of-place.
"""
from __future__ import annotations

import functools
import inspect
import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from warmstart.config import PrivacySettings
from warmstart.engine import Stream
from warmstart.errors import UserError

# Opacus' hooks on the first layer fire for its output gradient when the input needs none: expected.
warnings.filterwarnings("ignore", message="Full backward hook is firing")
BATCHNORM_CHANGE = ("encoder_args.norm: batch -> group (BatchNorm normalises over the batch, so one example's "
                    "gradient would depend on the others; GroupNorm normalises each example alone)")


def require_opacus():
    try:
        import opacus
    except ImportError:
        raise UserError("privacy needs Opacus: pip install 'warmstart[privacy]'") from None
    return opacus


def default_delta(rows: int) -> float:
    """1/N rounded down to the power of ten strictly below it: N = 50 → 0.01, N = 100 → 0.001, 30k → 1e-5."""
    exponent = math.floor(math.log10(1.0 / rows))
    if 10.0 ** exponent >= 1.0 / rows:
        exponent -= 1
    return float(f"1e{exponent}")


def resolve(settings: PrivacySettings, rows: int, what: str) -> PrivacySettings:
    """``settings`` checked against the ``rows`` private rows (``what`` names them), with δ filled in."""
    require_opacus()
    if settings.epsilon is not None and settings.noise_multiplier is not None:
        raise UserError("give privacy.epsilon (a target) or privacy.noise_multiplier, not both")
    if not settings.enabled:
        raise UserError("privacy needs privacy.epsilon=E (a target ε, e.g. 3) or privacy.noise_multiplier=S")
    delta = settings.delta if settings.delta is not None else default_delta(rows)
    if delta >= 1.0 / rows:
        raise UserError(f"privacy.delta={delta:g} is not below 1/N = {1.0 / rows:.3g} for the N = {rows} {what}: "
                        f"a δ that large allows releasing a row outright; use privacy.delta={default_delta(rows):g} "
                        "or smaller (the default)")
    return settings.model_copy(update={"delta": delta})


def refuse(kind: str, name: str, reason: str, fix: str) -> None:
    """One line: ``kind`` ``name`` cannot be made private, ``reason``, ``fix``."""
    if reason:
        raise UserError(f"{kind} '{name}' cannot be made differentially private: {reason}; {fix}")


# --- the model ---------------------------------------------------------------------------------------

def private_encoder_args(name: str, args: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The encoder options that make encoder ``name`` per-example: ``norm=group`` where it has BatchNorm."""
    from warmstart.models.encoders import ENCODERS

    if name not in ENCODERS:
        return dict(args), []
    norm = inspect.signature(ENCODERS.get(name)).parameters.get("norm")
    if norm is None or args.get("norm", norm.default) != "batch":
        return dict(args), []
    return {**args, "norm": "group"}, [BATCHNORM_CHANGE]


def without_batchnorm_stats(state: dict[str, torch.Tensor], target: nn.Module) -> dict[str, torch.Tensor]:
    """A BatchNorm encoder's weights for its GroupNorm twin: the affine weights carry over, the running
    statistics (which GroupNorm does not keep) are dropped; anything else missing is an error."""
    kept = {k: v for k, v in state.items() if k in target.state_dict()}
    missing = set(target.state_dict()) - set(kept)
    if missing:
        raise UserError(f"the pretrained encoder lacks {sorted(missing)[0]} for its GroupNorm twin; pretrain "
                        "with encoder_args.norm=group")
    return kept


def make_per_example(module: nn.Module) -> list[str]:
    """Make ``module``'s activations out-of-place and check with Opacus that every trainable layer has a
    per-example gradient; returns what was changed (for the run's config)."""
    from opacus.validators import ModuleValidator

    changed = 0
    for sub in module.modules():
        if getattr(sub, "inplace", False) is True:
            sub.inplace = False
            changed += 1
    training = module.training
    module.train()
    errors = ModuleValidator.validate(module, strict=False)
    module.train(training)
    if errors:
        raise UserError(f"the model cannot be trained privately: {str(errors[0]).splitlines()[0]}; use an "
                        "encoder with encoder_args.norm=group")
    return [f"{changed} in-place activations made out-of-place (Opacus' per-example gradient hooks need "
            "their inputs intact, Opacus issue #828)"] if changed else []


@functools.lru_cache(maxsize=64)
def noise_for(epsilon: float, delta: float, sample_rate: float, steps: int, accountant: str) -> float:
    """Opacus' noise multiplier that spends ``epsilon`` in ``steps`` steps at ``sample_rate`` (a search of
    seconds with PRV; cached, since every seed of a study asks for the same one)."""
    from opacus.accountants.utils import get_noise_multiplier

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # RDP's note that its best order is its largest: PRV asks RDP for a start
        return float(get_noise_multiplier(target_epsilon=epsilon, target_delta=delta, sample_rate=sample_rate,
                                          steps=steps, accountant=accountant))


# --- the batches -------------------------------------------------------------------------------------

@dataclass
class PoissonStream(Stream):
    """Poisson-sampled batches: each step takes each of the ``size`` rows independently with probability
    ``sample_rate`` (what DP-SGD's accounting assumes), an epoch being ``1 / sample_rate`` steps, as in
    Opacus' ``DPDataLoader``. The rows of step ``t`` are a pure function of (seed, stream, t)."""

    sample_rate: float = 0.0

    @classmethod
    def from_stream(cls, stream: Stream) -> "PoissonStream":
        steps = math.ceil(stream.size / stream.batch_size)  # len() of a DataLoader over the rows
        return cls(stream.size, stream.batch_size, stream.make_batch, sample_rate=1.0 / steps)

    @property
    def steps_per_epoch(self) -> int:
        return round(1.0 / self.sample_rate)

    def indices_at(self, step: int, seed: int, stream_id: int) -> np.ndarray:
        step_seed = int(np.random.SeedSequence([seed, stream_id, step, 1]).generate_state(1)[0])
        draw = torch.rand(self.size, generator=torch.Generator().manual_seed(step_seed))
        return np.flatnonzero((draw < self.sample_rate).numpy())


# --- training ----------------------------------------------------------------------------------------

@dataclass
class PrivateTraining:
    """DP-SGD for one ``engine.fit`` run over ``rows`` private rows; ``settings`` have δ resolved."""

    settings: PrivacySettings
    rows: int
    what: str = "labeled rows"
    noise_multiplier: float = 0.0
    sample_rate: float = 0.0
    steps: int = 0
    _engine: Any = field(default=None, repr=False)
    _hooks: Any = field(default=None, repr=False)

    def attach(self, model: nn.Module, optimizer: torch.optim.Optimizer, streams: list[Stream],
               epochs: int) -> tuple[torch.optim.Optimizer, list[Stream]]:
        """Opacus' ``PrivacyEngine`` wraps ``model`` (per-example gradient hooks, in place) and
        ``optimizer`` (clip, sum, noise) for ``epochs`` passes; the stream becomes Poisson-sampled.
        Returns the private optimiser and streams."""
        from opacus import PrivacyEngine
        from torch.utils.data import DataLoader

        if len(streams) != 1:
            raise UserError("a private run trains on one stream of private rows; this strategy mixes several")
        stream = PoissonStream.from_stream(streams[0])
        total_steps = epochs * stream.steps_per_epoch
        self.sample_rate, self.steps = stream.sample_rate, total_steps
        # Opacus reads the sample rate off a DataLoader of the private rows; batches come from the Poisson
        # stream at that same rate (a pure function of the step, so resume is exact), not from this loader.
        rows = DataLoader(range(stream.size), batch_size=stream.batch_size)
        model.train()  # Opacus checks the model in training mode (a frozen encoder stays in eval mode)
        with warnings.catch_warnings():
            # Opacus' note that secure_mode is off: the noise is seeded, by design, for reproducible runs.
            warnings.simplefilter("ignore")
            if self.settings.epsilon is not None:
                self.noise_multiplier = noise_for(self.settings.epsilon, self.settings.delta, self.sample_rate,
                                                  total_steps, self.settings.accountant)
            else:
                self.noise_multiplier = float(self.settings.noise_multiplier)
            self._engine = PrivacyEngine(accountant=self.settings.accountant)
            self._hooks, private_optimizer, _ = self._engine.make_private(
                module=model, optimizer=optimizer, data_loader=rows, noise_multiplier=self.noise_multiplier,
                max_grad_norm=self.settings.max_grad_norm, poisson_sampling=False, wrap_model=False)
        return private_optimizer, [stream]

    def noise_only(self, model: nn.Module) -> None:
        """An empty Poisson batch: no example contributes, the step still adds noise (and is counted)."""
        for p in model.parameters():
            if p.requires_grad:
                p.grad_sample = torch.zeros(0, *p.shape, dtype=p.dtype, device=p.device)

    def epsilon(self) -> float:
        if self._engine is None or len(self._engine.accountant) == 0:
            return 0.0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return float(self._engine.get_epsilon(self.settings.delta))

    def state(self) -> dict[str, Any]:
        """The accountant's history (JSON), saved in each checkpoint."""
        return {"history": [list(h) for h in self._engine.accountant.history]}

    def restore(self, state: dict[str, Any]) -> None:
        self._engine.accountant.history = [tuple(h) for h in state.get("history", [])]

    def detach(self) -> None:
        """Remove Opacus' hooks and per-example gradients: the model is an ordinary module again."""
        if self._hooks is not None:
            self._hooks.cleanup()
            self._hooks = None

    def report(self) -> dict[str, Any]:
        """What ``test_metrics.json`` and the study's table say about the run's privacy."""
        return {"epsilon": round(self.epsilon(), 4), "delta": self.settings.delta,
                "privacy": {"epsilon_target": self.settings.epsilon,
                            "noise_multiplier": round(self.noise_multiplier, 4),
                            "max_grad_norm": self.settings.max_grad_norm, "sample_rate": self.sample_rate,
                            "steps": self.steps, "accountant": self.settings.accountant, "private_rows": self.rows,
                            "rows": self.what, "changes": list(self.settings.changes)}}
