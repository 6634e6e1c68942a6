"""warmstart: pretrain on unlabeled data, fine-tune on few labels, measure what pretraining bought.

>>> import warmstart
>>> from warmstart.config import PretrainConfig, FinetuneConfig
>>> pre = warmstart.pretrain(PretrainConfig(data="digits", epochs=1))     # doctest: +SKIP
>>> warmstart.finetune(FinetuneConfig(data="digits", labels="per_class=5"), encoder=pre.encoder)  # doctest: +SKIP
"""
from warmstart.config import FinetuneConfig, PretrainConfig
from warmstart.errors import UserError

__version__ = "0.1.0"


def __getattr__(name: str):
    # Import the torch-heavy pipeline lazily so `warmstart --help` answers at once.
    if name in ("pretrain", "finetune", "evaluate"):
        from warmstart import pipeline

        return getattr(pipeline, name)
    if name == "load_run":
        from warmstart.rundir import load_run

        return load_run
    raise AttributeError(name)


__all__ = ["PretrainConfig", "FinetuneConfig", "UserError", "pretrain", "finetune", "evaluate", "load_run"]
