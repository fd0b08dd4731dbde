"""The estimators a discriminator file may name, and how they are described and rebuilt.

An allow-list, not a package prefix: "anything under sklearn." includes functions that run
shell commands (`sklearn.utils._testing.check_output`) and delete folders
(`sklearn.datasets.clear_data_home`). A name from a file is only ever a key into the table
below; the module and class imported are ours. Parameters are plain JSON scalars (or flat
lists of them) checked against the class's constructor, with bounds on the ones that set
how long a refit takes.
"""
from __future__ import annotations

import importlib
import inspect
import math
from pathlib import Path
from typing import Any, Callable, NoReturn

from attribcheck.errors import InputError, IntegrityError

Fail = Callable[[str, str], NoReturn]  # raises the caller's error naming (message, field)

# public name -> role. Transformers may only precede the classifier in a pipeline.
TRANSFORMERS = ("sklearn.preprocessing.StandardScaler", "sklearn.preprocessing.MinMaxScaler",
                "sklearn.preprocessing.RobustScaler")
CLASSIFIERS = ("sklearn.linear_model.LogisticRegression", "sklearn.svm.SVC",
               "sklearn.ensemble.RandomForestClassifier", "sklearn.ensemble.ExtraTreesClassifier",
               "sklearn.ensemble.GradientBoostingClassifier", "sklearn.neighbors.KNeighborsClassifier",
               "sklearn.naive_bayes.GaussianNB", "sklearn.discriminant_analysis.LinearDiscriminantAnalysis")
ALLOWED = TRANSFORMERS + CLASSIFIERS
# Randomised fits: without a fixed random_state the guard could not be recomputed on load
# (and the verdict would change from one load to the next).
RANDOMISED = {"sklearn.svm.SVC", "sklearn.ensemble.RandomForestClassifier", "sklearn.ensemble.ExtraTreesClassifier",
              "sklearn.ensemble.GradientBoostingClassifier"}
# Parameters that set the cost of a refit: bounded, so a file cannot make loading hang.
BOUNDS = {"n_estimators": (1, 1000), "max_iter": (1, 100_000), "n_jobs": (-1, 64), "n_neighbors": (1, 1000)}
MAX_STEPS, MAX_STR, MAX_LIST = 4, 64, 64
# Loading refits the classifier once per shadow (the leave-one-out guard), so its cost is
# bounded before anything is fitted. Work is counted in fits of one decision tree on 200
# shadows (about 2 ms on one core): a tree ensemble costs its n_estimators per fit, an SVC
# grows with the square of the shadows, a logistic regression with its max_iter (per 1,000),
# other classifiers about one unit per 200 shadows.
# 5,000 units is about 10 s; the shipped discriminators (scaled logistic regression, 14 and
# 22 shadows) need 28 and 44. A forest of 1,000 trees refits that way only up to 5 shadows.
MAX_REFIT_WORK = 5_000
ENSEMBLES = {"sklearn.ensemble.RandomForestClassifier", "sklearn.ensemble.ExtraTreesClassifier",
             "sklearn.ensemble.GradientBoostingClassifier"}


def _allowed_name(name: str) -> str | None:
    """The allow-list entry a file's class name stands for, or None. Files written before the
    allow-list name classes by their private module (`sklearn.preprocessing._data.StandardScaler`):
    such a name maps to the public entry of the same class, textually, without importing it."""
    if name in ALLOWED:
        return name
    module, _, cls = name.rpartition(".")
    for entry in ALLOWED:
        pub_module, _, pub_cls = entry.rpartition(".")
        if cls == pub_cls and module.startswith(pub_module + "._") and module.count(".") == pub_module.count(".") + 1:
            return entry
    return None


def _load_class(entry: str) -> type[Any]:
    module, _, cls = entry.rpartition(".")
    return getattr(importlib.import_module(module), cls)  # `entry` is one of ours, never the file's


def _public_name(est) -> str | None:
    for entry in ALLOWED:
        cls = entry.rpartition(".")[2]
        # the name first, so only the matching entry's module is imported
        if type(est).__name__ == cls and type(est) is _load_class(entry):
            return entry
    return None


def _check_value(value, field: str, fail: Fail) -> None:
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        if abs(value) > 10 ** 9:
            fail(f"{value} is out of range", field)
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            fail(f"{value} is not a finite number", field)
        return
    if isinstance(value, str):
        if len(value) > MAX_STR or not all(c.isalnum() or c in "_-." for c in value):
            fail(f"{value[:MAX_STR]!r} is not a plain option name", field)
        return
    fail(f"a {type(value).__name__} is not a plain parameter value (null, bool, number, name)", field)


def check_params(entry: str, params, field: str, fail: Fail) -> dict:
    """`params` as plain, bounded data the class's constructor accepts; `fail(message, field)` raises."""
    if not isinstance(params, dict):
        fail("must be an object of parameter values", field)
    accepted = set(inspect.signature(_load_class(entry).__init__).parameters) - {"self"}
    for name, value in params.items():
        f = f"{field}.{name}"
        if name not in accepted:
            fail(f"{entry.rpartition('.')[2]} has no parameter {name!r}", f)
        if isinstance(value, list):
            if len(value) > MAX_LIST:
                fail(f"a list of {len(value)} values is too long", f)
            for v in value:
                if isinstance(v, (list, dict)):
                    fail("nested lists and objects are not parameter values", f)
                _check_value(v, f, fail)
        else:
            _check_value(value, f, fail)
        if name in BOUNDS and value is not None:
            lo, hi = BOUNDS[name]
            if not (isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi):
                fail(f"{value!r} outside [{lo}, {hi}]", f)
    return params


def _steps(spec, field: str, fail: Fail) -> list[tuple[str, dict, str]]:
    """(entry, params, field) per step of a described estimator, checked, nothing built yet."""
    if not isinstance(spec, dict):
        fail("must be an object", field)
    if "pipeline" in spec:
        steps = spec["pipeline"]
        if set(spec) != {"pipeline"} or not isinstance(steps, list) or not 1 <= len(steps) <= MAX_STEPS:
            fail(f"a pipeline is {{'pipeline': [1 to {MAX_STEPS} steps]}}", field)
        items = [(s, f"{field}.pipeline.{i}") for i, s in enumerate(spec["pipeline"])]
    else:
        items = [(spec, field)]
    out = []
    for i, (step, f) in enumerate(items):
        if not isinstance(step, dict) or set(step) != {"class", "params"} or not isinstance(step["class"], str):
            fail("a step is {'class': name, 'params': {...}} (pipelines do not nest)", f)
        entry = _allowed_name(step["class"])
        if entry is None:
            fail(f"{step['class'][:120]!r} is not on the allow-list of estimators "
                 f"({', '.join(e.rpartition('.')[2] for e in ALLOWED)})", f"{f}.class")
        last = i == len(items) - 1
        if last and entry not in CLASSIFIERS:
            fail(f"{entry} is not a classifier; the last step must be one", f"{f}.class")
        if not last and entry not in TRANSFORMERS:
            fail(f"{entry} cannot precede the classifier; only scalers can", f"{f}.class")
        out.append((entry, check_params(entry, step["params"], f"{f}.params", fail), f))
    return out


def refit_work(spec, n_shadows: int, path: str | Path | None = None) -> float:
    """The leave-one-out refit's work (see MAX_REFIT_WORK) for a described estimator."""
    def fail(message: str, field: str) -> NoReturn:
        raise IntegrityError(message, path, field)

    scale = max(1.0, n_shadows / 200)
    per_fit = 0.0
    for entry, params, _ in _steps(spec, "classifier", fail):
        if entry in ENSEMBLES:
            per_fit += (params.get("n_estimators") or 100) * scale
        elif entry == "sklearn.svm.SVC":
            per_fit += 8 * scale ** 2
        elif entry == "sklearn.linear_model.LogisticRegression":  # on separable shadows it runs to max_iter
            per_fit += scale * max(1.0, (params.get("max_iter") or 100) / 1000)
        else:
            per_fit += scale
    return n_shadows * per_fit


def check_refit(spec, n_shadows: int, path: str | Path) -> None:
    """Refuse, before fitting anything, a classifier whose leave-one-out refit over
    `n_shadows` would exceed MAX_REFIT_WORK."""
    work = refit_work(spec, n_shadows, path)
    if work > MAX_REFIT_WORK:
        raise IntegrityError(f"refitting it once per shadow ({n_shadows} shadows) is {work:,.0f} units of work, "
                             f"over the bound of {MAX_REFIT_WORK:,} (fewer trees or fewer shadows)", path, "classifier")


def build(spec, path: str | Path):
    """An unfitted estimator from a file's description; IntegrityError naming the field otherwise."""
    from sklearn.pipeline import make_pipeline

    def fail(message: str, field: str) -> NoReturn:
        raise IntegrityError(message, path, field)

    checked = _steps(spec, "classifier", fail)
    steps = [_load_class(entry)(**params) for entry, params, _ in checked]
    if not hasattr(steps[-1], "predict_proba"):  # SVC without probability=true
        fail("gives no probabilities (set probability to true)", f"{checked[-1][2]}.params")
    return steps[0] if len(steps) == 1 else make_pipeline(*steps)


def describe(est, path: str | Path | None = None) -> dict:
    """The JSON description of an allow-listed estimator (or a pipeline of them); InputError
    for anything else, so a file this library writes always loads again."""
    from sklearn.pipeline import Pipeline

    def fail(message: str, field: str) -> NoReturn:
        raise InputError(message, path, field)

    ests = [step for _, step in est.steps] if isinstance(est, Pipeline) else [est]
    described = []
    for step in ests:
        entry = _public_name(step)
        if entry is None:
            fail(f"{type(step).__module__}.{type(step).__name__} is not on the allow-list of estimators "
                 f"({', '.join(e.rpartition('.')[2] for e in ALLOWED)})", "classifier")
        params = step.get_params(deep=False)
        if entry in RANDOMISED and params.get("random_state") is None:
            fail(f"{entry.rpartition('.')[2]} is randomised: set random_state to an integer so the "
                 f"discriminator refits identically on load", "classifier")
        described.append({"class": entry, "params": params})
    if not hasattr(ests[-1], "predict_proba"):
        fail(f"{type(ests[-1]).__name__} gives no probabilities (set probability=True)", "classifier")
    spec = {"pipeline": described} if isinstance(est, Pipeline) else described[0]
    _steps(spec, "classifier", fail)  # the same checks loading applies
    return spec
