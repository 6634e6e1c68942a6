"""What a fine-tune starts from, settled before its run directory is created.

``finetune`` (``warmstart.pipeline``) takes from here its labeled, validation and pool rows, the pretrained
encoder (and, for strategies that keep training it, the pretraining objective rebuilt around the model's
encoder), and its DP-SGD training; each refuses what cannot run in one line, so a failed start writes
nothing. The federated checks refuse a strategy or split a client cannot train on the same way.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from warmstart import privacy as dp
from warmstart.config import FinetuneConfig
from warmstart.data import DataBundle
from warmstart.data.validation import Rows, draw_rows
from warmstart.errors import UserError
from warmstart.models import Encoder
from warmstart.models.build import build_encoder, check_input_shape
from warmstart.objectives import OBJECTIVES, Objective
from warmstart.rundir import load_run
from warmstart.strategies import Strategy


def finetune_rows(task, data: DataBundle, config: FinetuneConfig, labeled, validation) -> Rows:
    """The budget's draw with its validation rows (``config.validation``), or the given ``labeled`` (and
    ``validation``) training rows, every other row being the pool."""
    if labeled is None:
        return draw_rows(task, data, config.labels, config.validation, config.seed)
    n = len(data.x_train)
    labeled = np.unique(np.asarray(labeled, dtype=np.int64))
    held = np.unique(np.asarray([] if validation is None else validation, dtype=np.int64))
    if len(labeled) == 0 or labeled[0] < 0 or labeled[-1] >= n or (len(held) and (held[0] < 0 or held[-1] >= n)):
        raise UserError(f"labeled rows must be 1..{n} distinct indices of the training split")
    if np.intersect1d(labeled, held).size:
        raise UserError("validation rows must not be labeled training rows; give disjoint index sets")
    pool = np.setdiff1d(np.arange(n), np.union1d(labeled, held))
    return Rows(labeled, labeled, held, pool)


def private_finetune(config: FinetuneConfig, strategy: Strategy, task, labeled: np.ndarray):
    """The DP-SGD run ``config.privacy`` asks for over the labeled rows (None: not private), refusing a
    strategy or task that cannot be private in one line, before anything is written."""
    if config.privacy is None:
        return None
    dp.refuse("strategy", config.strategy, strategy.privacy_problem(),
              "use --strategy full, linear or scratch with privacy")
    dp.refuse("task", task.name, task.not_private, "privacy serves the classify task")
    if config.privacy.private_pool and config.pretrained is not None:
        pool = Path(config.pretrained) / "privacy.json"
        if not pool.is_file():
            raise UserError(f"privacy.private_pool=true but {config.pretrained} was pretrained without privacy; "
                            "pretrain with privacy.private_pool=true or drop it here")
    settings = dp.resolve(config.privacy, len(labeled), "labeled rows")
    return dp.PrivateTraining(settings, len(labeled), "labeled rows")


def check_federated(config: FinetuneConfig, strategy: Strategy, task, data: DataBundle, rows: Rows,
                    resume: bool) -> None:
    """Refuse, before anything is written, a federated fine-tune that cannot run: a strategy a client
    cannot train alone, validation rows (no client scores them), or labeled rows the clients cannot share."""
    from warmstart import federated

    federated.check(config, resume)
    if strategy.privacy_problem():
        raise UserError(f"strategy '{config.strategy}' cannot run federated (a client trains on its own labeled "
                        f"rows alone): {strategy.privacy_problem()}; use --strategy full, linear or scratch")
    if len(rows.validation):
        raise UserError("federated fine-tuning does not score validation rows (each client trains on its own "
                        "shard); give validation=none")
    federated.partition(task.strata(data, len(rows.labeled))[0][rows.labeled], config.federated, config.seed,
                        "labeled rows")  # refuses an impossible split before anything is written


def starting_encoder(config: FinetuneConfig, strategy: Strategy, data: DataBundle, encoder, objective):
    """The pretrained encoder (and objective, for strategies that keep training it) a fine-tune starts from."""
    if config.pretrained is not None and config.pretrained.startswith("hf:"):
        raise UserError(f"--from takes a `warmstart pretrain` run directory and {config.pretrained} is a Hugging Face "
                        f"model: use --encoder {config.pretrained} instead (its weights are the pretrained encoder)")
    if encoder is None and config.pretrained is not None:
        encoder, _meta = load_run(config.pretrained, "encoder")
    if strategy.needs_objective and objective is None:
        if config.pretrained is None:
            raise UserError(f"strategy '{config.strategy}' keeps training the pretraining objective; "
                            "pass --from RUN_DIR (a `warmstart pretrain` run)")
        objective, _meta = load_run(config.pretrained, "objective")
        encoder = encoder if encoder is not None else objective.encoder
    if encoder is not None:  # (a table is first re-read in the encoder's column schema)
        check_input_shape(encoder.input_shape, data.handler.prepare(data, encoder), "the encoder was pretrained on",
                          "pretrain on the same kind of data")
    if encoder is None and strategy.load_pretrained and config.encoder.startswith("hf:"):
        # A Hugging Face model directory's own weights are the pretrained encoder.
        encoder = build_encoder(config.encoder, data.input_shape, config.encoder_args, data.modality)
    if encoder is None and strategy.load_pretrained:
        raise UserError(f"strategy '{config.strategy}' starts from a pretrained encoder; pass --from RUN_DIR "
                        "(a `warmstart pretrain` run) or use --strategy scratch")
    return encoder, objective


def model_encoder_spec(config: FinetuneConfig, strategy: Strategy, data: DataBundle, encoder: Encoder | None,
                       private) -> tuple[dict[str, Any], list[str], FinetuneConfig]:
    """The spec of the encoder the model gets (``encoder``'s, or ``config.encoder`` for one built fresh), the
    changes a private run makes to it so it can train per-example, and the config that records them."""
    spec = encoder.spec if encoder is not None else {
        "encoder": config.encoder, "encoder_args": config.encoder_args, "input_shape": list(data.input_shape)}
    changes: list[str] = []
    if private is not None and strategy.train_encoder:  # a frozen encoder's BatchNorm uses fixed statistics
        encoder_args, changes = dp.private_encoder_args(spec["encoder"], spec["encoder_args"])
        spec = {**spec, "encoder_args": encoder_args}
        if encoder is None:
            config = config.model_copy(update={"encoder_args": encoder_args})
    return spec, changes, config


def build_model_encoder(spec: dict[str, Any], strategy: Strategy, data: DataBundle, encoder: Encoder | None,
                        changes: list[str]) -> Encoder:
    """The model's own encoder, built from ``spec``.

    Scratch builds the same architecture afresh; the others start from a copy of the pretrained weights,
    so one pretrained encoder can serve many fine-tunes.
    """
    model_encoder = build_encoder(spec["encoder"], data.input_shape, spec["encoder_args"], data.modality,
                                  tokenizer=spec.get("tokenizer"), corpus=data.handler.corpus(data),
                                  weights=strategy.load_pretrained, schema=spec.get("schema") or data.schema)
    if strategy.load_pretrained:
        state = encoder.state_dict()
        model_encoder.load_state_dict(dp.without_batchnorm_stats(state, model_encoder) if changes else state)
    return model_encoder


def objective_around(source: Objective, encoder: Encoder) -> Objective:
    """A copy of ``source``'s objective built around ``encoder``, with ``source``'s pretrained heads.

    Only the encoder's weights may be missing from the copy (they come from ``encoder``), as MAE's
    fine-tuning asserts for its new head.
    """
    objective = OBJECTIVES.build(source.spec["objective"], encoder, **source.spec["objective_args"])
    heads = {k: v for k, v in source.state_dict().items() if not k.startswith("encoder.")}
    missing, unexpected = objective.load_state_dict(heads, strict=False)
    assert not unexpected and all(k.startswith("encoder.") for k in missing), (missing, unexpected)
    return objective
