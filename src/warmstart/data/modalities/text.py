"""The ``text`` modality: documents (strings) or pre-split word sequences (tuples of words) as token ids.

A text bundle's rows are a 1-D object array; ``prepare`` attaches the encoder's tokenizer, after which
``batch`` returns padded ``(B, L)`` int64 ids (the pad id doubles as the attention mask).
"""
from __future__ import annotations

import numpy as np
import torch

from warmstart.data.modalities.base import MODALITIES, Modality


class TextModality(Modality):
    """Text: tokenised with the encoder's own tokenizer; TF-IDF + truncated SVD for the baselines."""

    name = "text"
    description = "documents or word sequences"

    def batch(self, bundle, rows: np.ndarray) -> torch.Tensor:
        from warmstart.data.text import encode

        if bundle.tokenizer is None:
            raise RuntimeError("text batches need a tokenizer: prepare the bundle for the encoder first")
        return encode(bundle.tokenizer, rows, bundle.max_length)[0]

    def prepare(self, bundle, encoder):
        return bundle.with_tokenizer(encoder.tokenizer, encoder.max_length)

    def flat_features(self, bundle) -> tuple[np.ndarray, np.ndarray]:
        """TF-IDF reduced to 256 dimensions (fewer for a small vocabulary) by truncated SVD, both fit on the
        training documents (labels unused), so every baseline gets dense rows."""
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer

        from warmstart.data.text import as_text

        train, test = [as_text(d) for d in bundle.x_train], [as_text(d) for d in bundle.x_test]
        tfidf = TfidfVectorizer(sublinear_tf=True, min_df=2).fit(train)
        dims = min(256, len(tfidf.vocabulary_) - 1)  # SVD needs fewer components than features
        svd = TruncatedSVD(dims, random_state=0).fit(tfidf.transform(train))
        return tuple(svd.transform(tfidf.transform(docs)).astype(np.float32) for docs in (train, test))


MODALITIES.register("text")(TextModality())
