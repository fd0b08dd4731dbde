"""The shadow-model discriminator as a scikit-learn estimator.

Input X: each row a model's K reconstruction distances on the key set; y: 1 = infringing
shadow, 0 = innocent shadow. Saved as JSON parameters plus the shadows' profiles, never as
a pickle: loading re-fits the named scikit-learn classifier, so no foreign code runs.
"""
from __future__ import annotations

import importlib
import json
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.multiclass import unique_labels
from sklearn.utils.validation import check_is_fitted, validate_data

from attribcheck.statistical.features import DEFAULT_BINS, profile_features


def default_classifier():
    return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000))


class ShadowDiscriminator(ClassifierMixin, BaseEstimator):
    """P(infringing) from a distance profile. `classifier`: any scikit-learn classifier with
    predict_proba (default: standardised logistic regression)."""

    def __init__(self, classifier=None, bins=DEFAULT_BINS):
        self.classifier = classifier
        self.bins = bins

    def _features(self, X) -> np.ndarray:
        return profile_features(X, self.bins)

    def fit(self, X, y):
        X, y = validate_data(self, X, y)
        self.classes_ = unique_labels(y)
        if len(self.classes_) < 2:
            raise ValueError(f"needs infringing and innocent shadows; got {len(self.classes_)} class")
        self.classifier_ = clone(self.classifier if self.classifier is not None else default_classifier())
        self.classifier_.fit(self._features(X), y)
        self.X_fit_, self.y_fit_ = X, y  # kept so save() can store data, not code
        return self

    def predict_proba(self, X) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        return self.classifier_.predict_proba(self._features(X))

    def predict(self, X) -> np.ndarray:
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    # -- persistence --------------------------------------------------------------------------
    def leave_one_out_accuracy(self) -> float:
        """How often a copy fitted without one shadow classifies that shadow right: the
        discriminator's own evidence that the shadows' profiles separate at all."""
        from sklearn.model_selection import LeaveOneOut, cross_val_score

        check_is_fitted(self)
        est = ShadowDiscriminator(self.classifier, self.bins)
        scores = [s for s in cross_val_score(est, self.X_fit_, self.y_fit_, cv=LeaveOneOut(), error_score=0.0)]
        return float(np.mean(scores))

    def save(self, path: str | Path, **metadata) -> None:
        """JSON: the classifier's description, the shadows' profiles and `metadata` (for a
        key set's discriminator: its content hash, so the pair cannot drift apart)."""
        check_is_fitted(self)
        clf = self.classifier if self.classifier is not None else default_classifier()
        Path(path).write_text(json.dumps({"bins": list(self.bins), "classifier": _describe(clf),
                                          "X": self.X_fit_.tolist(), "y": self.y_fit_.tolist(),
                                          "metadata": metadata}))

    @classmethod
    def load(cls, path: str | Path, **expected) -> "ShadowDiscriminator":
        """Load and refit; each `expected` metadata item (e.g. keyset_hash=...) must match."""
        data = json.loads(Path(path).read_text())
        meta = data.get("metadata", {})
        for key, value in expected.items():
            if meta.get(key) != value:
                raise ValueError(f"{path}: {key} is {meta.get(key)!r}, expected {value!r}; "
                                 f"the discriminator belongs to another key set")
        est = cls(classifier=_build(data["classifier"]), bins=tuple(data["bins"]))
        est.metadata_ = meta
        return est.fit(np.asarray(data["X"]), np.asarray(data["y"]))


def _describe(est) -> dict:
    """A JSON description of a scikit-learn estimator (pipelines of them included)."""
    if hasattr(est, "steps"):
        return {"pipeline": [_describe(step) for _, step in est.steps]}
    cls = type(est)
    if not cls.__module__.startswith("sklearn."):
        raise ValueError(f"only scikit-learn estimators are saved, not {cls.__module__}.{cls.__name__}")
    params = est.get_params(deep=False)
    json.dumps(params)  # raises for parameters that are not plain data
    return {"class": f"{cls.__module__}.{cls.__name__}", "params": params}


def _build(spec: dict):
    if "pipeline" in spec:
        return make_pipeline(*[_build(s) for s in spec["pipeline"]])
    module, _, name = spec["class"].rpartition(".")
    if not module.startswith("sklearn."):
        raise ValueError(f"refusing to build {spec['class']}: only scikit-learn classes load")
    return getattr(importlib.import_module(module), name)(**spec["params"])
