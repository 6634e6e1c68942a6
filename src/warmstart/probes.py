"""The one linear probe: standardised features → scikit-learn's logistic or ridge regression, as a linear map.

LP-FT's head initialisation (``full`` with ``head_init=probe``), self-training's ``probe`` targets and the
benchmarks' frozen-feature probes all use it. The standardisation is folded into the weights —
``w·(z - mean)/scale + b = (w/scale)·z + (b - w·mean/scale)`` — so the result is a plain ``(K, F)`` weight
and ``(K,)`` bias that a ``nn.Linear`` head can take over. Standardised features measured 1-2 points
better than raw ones for a SimCLR CNN probe on Fashion-MNIST.
"""
from __future__ import annotations

import numpy as np

KINDS = ("logistic", "ridge")
#: Ridge penalties tried by efficient leave-one-out over the labeled rows (a choice made on them only).
RIDGE_ALPHAS = np.logspace(-3, 4, 15)
#: The logit of a class the labeled rows never showed: far below any fitted one.
UNSEEN_BIAS = -10.0


class LinearProbe:
    """``fit(z, t)`` on ``(n, F)`` features; then ``weight`` ``(K, F)``, ``bias`` ``(K,)`` and ``scores(z)``.

    ``kind="logistic"``: ``t`` holds class indices; ``K = num_outputs`` classes; classes absent from ``t`` get
    zero weights and a bias of ``UNSEEN_BIAS``, so they are (almost) never predicted. ``kind="ridge"``: ``t`` is
    ``(n, K)`` real targets, the penalty picked by leave-one-out (``RidgeCV``). ``c`` is the logistic
    regression's inverse penalty (scikit-learn's ``C``, default 1; smaller is smoother; ridge picks its own
    and ignores it). ``scale_from`` (default ``z``)
    gives the rows whose mean and std standardise the features — e.g. the whole unlabeled pool, which costs no
    labels.

    >>> probe = LinearProbe("logistic").fit(np.array([[0.0], [1.0], [0.1], [0.9]]), np.array([0, 1, 0, 1]), 2)
    >>> probe.predict(np.array([[0.05], [0.95]])).tolist()
    [0, 1]
    """

    def __init__(self, kind: str, max_iter: int = 3000, c: float = 1.0) -> None:
        if kind not in KINDS:
            raise ValueError(f"probe kind must be one of {', '.join(KINDS)}, got {kind!r}")
        if c <= 0:
            raise ValueError(f"probe c (the logistic regression's C) must be > 0, got {c}")
        self.kind, self.max_iter, self.c = kind, max_iter, c

    def fit(self, z: np.ndarray, t: np.ndarray, num_outputs: int, scale_from: np.ndarray | None = None) -> LinearProbe:
        z = np.asarray(z, dtype=np.float64)
        ref = z if scale_from is None else np.asarray(scale_from, dtype=np.float64)
        mean, scale = ref.mean(0), ref.std(0) + 1e-6
        standard = (z - mean) / scale
        coef, intercept = self._fit_standardised(standard, np.asarray(t), num_outputs)
        self.weight = coef / scale  # (K, F)
        self.bias = intercept - self.weight @ mean  # (K,)
        return self

    def _fit_standardised(self, z: np.ndarray, t: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if self.kind == "ridge":
            from sklearn.linear_model import RidgeCV

            fitted = RidgeCV(alphas=RIDGE_ALPHAS).fit(z, t.reshape(len(t), -1))
            return np.atleast_2d(fitted.coef_), np.atleast_1d(fitted.intercept_)
        from sklearn.linear_model import LogisticRegression

        coef, intercept = np.zeros((k, z.shape[1])), np.full(k, UNSEEN_BIAS)
        classes = np.unique(t)
        if len(classes) == 1:  # one class seen: it wins everywhere
            intercept[classes[0]] = 0.0
            return coef, intercept
        fitted = LogisticRegression(C=self.c, max_iter=self.max_iter).fit(z, t)
        if len(fitted.classes_) == 2:  # scikit-learn's binary form: one logit for class 1 against class 0
            coef[fitted.classes_[1]], intercept[fitted.classes_[1]] = fitted.coef_[0], fitted.intercept_[0]
        else:
            coef[fitted.classes_], intercept[fitted.classes_] = fitted.coef_, fitted.intercept_
        return coef, intercept

    def scores(self, z: np.ndarray) -> np.ndarray:
        """``(n, K)`` logits (logistic) or predicted targets (ridge)."""
        return np.asarray(z, dtype=np.float64) @ self.weight.T + self.bias

    def predict_proba(self, z: np.ndarray) -> np.ndarray:
        """``(n, K)`` class probabilities (softmax of the logits; unseen classes get almost 0)."""
        s = self.scores(z)
        s = np.exp(s - s.max(1, keepdims=True))
        return s / s.sum(1, keepdims=True)

    def predict(self, z: np.ndarray) -> np.ndarray:
        return self.predict_proba(z).argmax(1) if self.kind == "logistic" else self.scores(z)

    def to_head(self, head) -> None:
        """Copy the probe into ``head`` (a ``nn.Linear`` with ``K`` outputs)."""
        import torch

        with torch.no_grad():
            head.weight.copy_(torch.as_tensor(self.weight, dtype=head.weight.dtype))
            head.bias.copy_(torch.as_tensor(self.bias, dtype=head.bias.dtype))
