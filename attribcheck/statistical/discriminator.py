"""The shadow-model discriminator as a scikit-learn estimator.

Input X: each row a model's K reconstruction distances on the key set; y: 1 = infringing
shadow, 0 = innocent shadow. Saved as JSON parameters plus the shadows' profiles, never as
a pickle: loading re-fits the classifier from the profiles.

A discriminator file is untrusted (it travels with a key set, and its verdict can end in an
accusation), so loading it (`discriminator_file.py` holds the checks):
- builds only estimator classes from an explicit allow-list (skops' idea of trusted types),
  looked up by name in our own table before anything is imported or called;
- accepts only plain, bounded JSON scalars (or flat lists of them) as their parameters;
- validates the file's schema (bins, profiles, labels) before fitting anything;
- recomputes the leave-one-out accuracy the verdict's guard depends on, and refuses a file
  whose stored value disagrees with it (a forged guard turned inconclusive verdicts into
  attributed ones).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.multiclass import unique_labels
from sklearn.utils.validation import check_is_fitted, validate_data

from attribcheck.errors import IntegrityError
from attribcheck.statistical import estimators
from attribcheck.statistical.features import DEFAULT_BINS, profile_features

# Two leave-one-out accuracies are the same number when they agree to this (they are counts
# over the shadows, so any real disagreement is at least 1/n).
CV_TOLERANCE = 1e-9


def default_classifier():
    return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000))


class ShadowDiscriminator(ClassifierMixin, BaseEstimator):
    """P(infringing) from a distance profile. `classifier`: a scikit-learn classifier with
    predict_proba (default: standardised logistic regression); only allow-listed ones save."""

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
        self.loo_misses_ = None  # computed on first use by held_out_misses(); the guard reads it
        return self

    def predict_proba(self, X) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        return self.classifier_.predict_proba(self._features(X))

    def predict(self, X) -> np.ndarray:
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    # -- the guard -------------------------------------------------------------------------------
    def held_out_misses(self) -> tuple[int, int]:
        """(infringing shadows called innocent, innocent shadows called infringing) when a copy
        fitted without each shadow classifies it: the sides on which the discriminator has been
        wrong. A fold that cannot be fitted counts as a miss of its shadow. Computed once."""
        check_is_fitted(self)
        misses: tuple[int, int] | None = getattr(self, "loo_misses_", None)
        if misses is None:
            missed = {0: 0, 1: 0}
            for i in range(len(self.y_fit_)):
                keep = np.arange(len(self.y_fit_)) != i
                try:
                    est = ShadowDiscriminator(self.classifier, self.bins).fit(self.X_fit_[keep], self.y_fit_[keep])
                    right = est.predict(self.X_fit_[i:i + 1])[0] == self.y_fit_[i]
                except Exception:  # noqa: BLE001 - any failed fold is a miss, never a pass
                    right = False
                missed[int(self.y_fit_[i])] += int(not right)
            misses = self.loo_misses_ = (missed[1], missed[0])
        return misses

    def leave_one_out_accuracy(self) -> float:
        """How often a copy fitted without one shadow classifies that shadow right: the
        discriminator's own evidence that the shadows' profiles separate at all."""
        return (len(self.y_fit_) - sum(self.held_out_misses())) / len(self.y_fit_)

    def guard_accuracy(self) -> float:
        """The leave-one-out accuracy, computed from the fitted profiles (once): what the
        statistical verdict's guard reads. Never a value from a file or from `metadata_`."""
        return self.leave_one_out_accuracy()

    # -- persistence -----------------------------------------------------------------------------
    def save(self, path: str | Path, **metadata) -> None:
        """JSON: the classifier's description, the shadows' profiles and `metadata` (for a
        key set's discriminator: its content hash, so the pair cannot drift apart). Refuses
        classifiers outside the allow-list, and NaN anywhere (standard JSON only)."""
        from attribcheck.statistical.discriminator_file import DiscriminatorFile

        check_is_fitted(self)
        path = Path(path)
        clf = self.classifier if self.classifier is not None else default_classifier()
        DiscriminatorFile(bins=[float(b) for b in self.bins], classifier=estimators.describe(clf, path),
                          X=self.X_fit_.tolist(), y=[int(v) for v in self.y_fit_], metadata=metadata).save(path)

    @classmethod
    def load(cls, path: str | Path, **expected) -> "ShadowDiscriminator":
        """Validate, refit, recompute the guard; each `expected` metadata item (e.g.
        keyset_hash=...) must match."""
        from attribcheck.statistical.discriminator_file import read

        path = Path(path)
        data = read(path)
        meta = data.metadata
        for key, value in expected.items():
            if meta.get(key) != value:
                raise IntegrityError(f"is {meta.get(key)!r}, expected {value!r}: the discriminator belongs to "
                                     f"another key set", path, f"metadata.{key}")
        est = cls(classifier=estimators.build(data.classifier, path), bins=tuple(data.bins))
        try:
            est.fit(np.asarray(data.X, dtype=np.float64), np.asarray(data.y, dtype=np.int64))
        except ValueError as e:  # the allow-listed classifier rejected its parameters
            raise IntegrityError(f"cannot refit: {str(e).splitlines()[0]}", path, "classifier") from e
        cv = est.guard_accuracy()
        stored = meta.get("cv_accuracy")
        if stored is not None and abs(stored - cv) > CV_TOLERANCE:
            raise IntegrityError(f"is {stored}, but the stored shadow profiles give {cv:.4f}: the file was "
                                 f"altered", path, "metadata.cv_accuracy")
        est.metadata_ = {**meta, "cv_accuracy": cv}
        return est
