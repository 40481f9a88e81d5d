"""The search of ``trainflow tune`` on Optuna: the space, the study, one trial, and the artifacts.

- :func:`parse_space` reads ``KEY=KIND:ARGS`` (``loguniform:1e-4:1e-1``, ``float:0:1``, ``int:1:8``,
  ``choice:svm,logistic_regression``) and :func:`check_space` tries every bound and choice on the spec,
  so an unknown field, ``low > high`` or an unknown component is a spec error naming it, before anything runs;
- :func:`open_study`: a TPE study (seeded) with a median pruner, stored in SQLite under the pipeline's
  cache folder, so that a killed tune resumes: finished trials (complete or pruned) are kept, trials
  left running by the killed process are marked failed and not counted;
- :func:`run_trial`: fit one trial's spec on the training part with a pruning hook on the intermediate
  scores (:func:`trainflow.tasks.common.selection.reporting`: the validation metric after every epoch of
  a network, the CV mean after every fold of a table); its objective is the selection score, never a
  test score;
- :func:`trials_table`, :func:`history_markdown`, :func:`importance_table`: the artifacts.

Optuna is imported inside functions (the optional ``tune`` extra).
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainflow.errors import SpecError, TrainflowError
from trainflow.refs import ModelRef, SplitRef

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from trainflow.spec import PipelineSpec

KINDS = ("float", "uniform", "loguniform", "log", "int", "intlog", "choice")
#: the objective: the selection score signed so that higher is better (the study maximizes)
DIRECTION = "maximize"
#: combinations of the other entries' samples a space check tries beside each value (the first ones)
MAX_COMBINATIONS = 64


@dataclass(frozen=True)
class Param:
    """One dimension of the space: a spec field and its distribution."""

    key: str
    kind: str  # float | log | int | intlog | choice
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()

    def distribution(self) -> Any:
        """The Optuna distribution of this dimension."""
        import optuna.distributions as D

        if self.kind == "choice":
            return D.CategoricalDistribution(list(self.choices))
        if self.kind in ("int", "intlog"):
            return D.IntDistribution(int(self.low), int(self.high), log=self.kind == "intlog")
        return D.FloatDistribution(self.low, self.high, log=self.kind == "log")

    def samples(self) -> list[str]:
        """The values that :func:`check_space` tries on the spec (bounds, every choice)."""
        if self.kind == "choice":
            return list(self.choices)
        fmt = (lambda v: str(int(v))) if self.kind in ("int", "intlog") else repr
        return [fmt(self.low), fmt(self.high)]


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise SpecError(f"{what}: expected a number, got {text!r}.") from None
    if math.isnan(value) or math.isinf(value):
        raise SpecError(f"{what}: expected a finite number, got {text!r}.")
    return value


#: what the candidates of a sweep or the trials of a tune share: scores on other data or another split
#: (or under another pipeline name) could not be ranked against each other
FIXED_KEYS = ("data", "split", "tune", "name")


def fixed_key_problem(key: str, search: str) -> str | None:
    """Why ``key`` (``split.test_size``) cannot vary in a ``search`` ("sweep", "tune"); None where it can."""
    head = key.split(".")[0]
    if head not in FIXED_KEYS:
        return None
    return (f"a {search} compares models on the same data and split; '{head}' cannot vary "
            f"(use --set to change it for every candidate)")


def parse_param(item: str) -> Param:
    """``"model.C=loguniform:1e-3:1e2"`` -> :class:`Param` (SpecError naming the item otherwise)."""
    from trainflow.errors import expected

    key, sep, rest = item.partition("=")
    key, rest = key.strip(), rest.strip()
    kind, _, args = rest.partition(":")
    where = f"tune space {key or item!r}"
    if not sep or not key or not kind:
        raise SpecError(f"--space expects KEY=KIND:ARGS, e.g. model.C=loguniform:1e-3:1e2 or "
                        f"model.name=choice:svm,logistic_regression. Got {item!r}.")
    if why := fixed_key_problem(key, "tune"):
        raise SpecError(f"{where}: {why}.")
    if kind not in KINDS:
        raise SpecError(expected(f"The kind of {where}", KINDS, kind))
    if kind == "choice":
        choices = tuple(c.strip() for c in args.split(",") if c.strip())
        if not choices:
            raise SpecError(f"{where}: choice needs values, e.g. choice:svm,logistic_regression.")
        return Param(key, "choice", choices=choices)
    bounds = args.split(":")
    if len(bounds) != 2:
        example = "1:10" if kind in ("int", "intlog") else "1e-3:1e2"
        raise SpecError(f"{where}: {kind} needs LOW:HIGH, e.g. {kind}:{example}. Got {args!r}.")
    low, high = (_number(b, where) for b in bounds)
    kind = {"uniform": "float", "loguniform": "log"}.get(kind, kind)
    if low > high:
        raise SpecError(f"{where}: low {low:g} is above high {high:g}.")
    if kind in ("log", "intlog") and low <= 0:
        raise SpecError(f"{where}: a log scale needs low > 0. Got {low:g}.")
    if kind in ("int", "intlog") and (low != int(low) or high != int(high)):
        raise SpecError(f"{where}: int bounds must be whole numbers. Got {args!r}.")
    return Param(key, kind, low, high)


def parse_space(items: list[str], spec_space: dict[str, str] | None = None) -> list[Param]:
    """The space of the spec's ``tune.space`` with ``--space`` items added (an item replaces the spec's
    entry for the same key). Every problem is reported at once."""
    merged = {k: f"{k}={v}" for k, v in (spec_space or {}).items()}
    for item in items:
        merged[item.partition("=")[0].strip()] = item
    params, problems = [], []
    for item in merged.values():
        try:
            params.append(parse_param(item))
        except SpecError as exc:
            problems += exc.problems
    if problems:
        raise SpecError(problems)
    if not params:
        raise SpecError("tune needs a space: --space KEY=KIND:ARGS (repeatable) or a 'tune.space' section.")
    return params


def unread_section(spec: PipelineSpec, key: str) -> str | None:
    """Why varying ``key`` cannot change ``spec``'s model when it lies in a section only other
    modalities read (``train.lr`` on a table), else None."""
    from trainflow import modalities

    mod = modalities.get(spec.modality)
    if mod.reads_other_sections:
        return None
    head = key.split(".")
    section = ".".join(head[:2]) if head[0] == "preprocess" else head[0]
    if section in set(modalities.sections()) - set(mod.sections):
        return f"{spec.modality} pipelines do not read the '{section}' section"
    return None


def check_space(path: str, sets: list[str], space: list[Param]) -> None:
    """Load the spec with every bound and choice of ``space``, each beside some values of the other
    entries (a conditional space: ``preprocess.reduce.n_components`` is an option of
    ``preprocess.reduce.method=pca`` only): a value no combination accepts (an unknown field, an
    out-of-range value, an unknown component, ``model.C`` beside models that have none) is a
    SpecError naming the space entry."""
    from trainflow.spec import load_spec

    problems: list[str] = []
    spec = load_spec(path, sets)
    for param in space:
        unread = unread_section(spec, param.key)
        if unread:
            problems.append(f"tune space {param.key}: {unread}, so every trial would be the same; tune a field "
                            f"the spec's model uses.")
    if problems:
        raise SpecError(problems, path)

    def refusal(extra: list[str]) -> SpecError | None:
        try:
            load_spec(path, [*sets, *extra])
            return None
        except SpecError as exc:
            return exc

    # an entry a value of which the spec refuses on its own and beside every mix of the others is wrong itself
    conflicts: list[str] = []
    for param in space:
        others = [p for p in space if p is not param]
        for value in param.samples():
            alone = refusal([override(param, value)])
            mixed = None
            for combo in itertools.islice(itertools.product(*(p.samples() for p in others)), MAX_COMBINATIONS):
                mixed = refusal(overrides(space, {p.key: v for p, v in zip(others, combo)} | {param.key: value}))
                if mixed is None:
                    break
            if alone is not None and mixed is not None:
                problems += [f"tune space {param.key}={value}: {p}" for p in alone.problems]
                break  # one value shows what is wrong with the entry
            if mixed is not None and not conflicts:  # fine on its own, in no trial the space can draw
                conflicts += [f"tune space {param.key}={value}: no values of the other entries make a valid spec "
                              f"with it ({p})" for p in mixed.problems]
    problems = problems or conflicts
    if problems:
        raise SpecError(problems, path)


def override(param: Param, value: Any) -> str:
    """The ``--set`` assignment of one sampled value. A model chosen by name starts from its own
    defaults: the spec's options belong to the spec's model (``penalty`` means nothing to an SVM)."""
    if param.key == "model.name":
        return f'model={{"name": "{value}"}}'
    return f"{param.key}={value!r}" if isinstance(value, float) else f"{param.key}={value}"


def overrides(space: list[Param], params: dict[str, Any]) -> list[str]:
    """The ``--set`` assignments of one trial's ``params`` (the model's name first)."""
    ordered = sorted(space, key=lambda p: p.key != "model.name")
    return [override(p, params[p.key]) for p in ordered]


# ---------------------------------------------------------------- the study


def study_path(cache: str, pipeline: str) -> Path:
    """The SQLite file of a pipeline's tune study (under the cache: disposable, local)."""
    return Path(cache) / "tune" / f"{pipeline}.sqlite3"


def storage_url(cache: str, pipeline: str) -> str:
    path = study_path(cache, pipeline)
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path.resolve()}"


def study_name(spec: PipelineSpec, space: list[Param]) -> str:
    """One study per spec and space: another space or spec starts another study in the same file."""
    from trainflow.refs import json_digest

    return f"{spec.name}-{json_digest([spec.key_dump(exclude={'tune'}), [p.__dict__ for p in space]])[:12]}"


#: study file -> descriptor holding its lock while this process tunes it
_study_locks: dict[str, int] = {}


def lock_study(cache: str, pipeline: str) -> None:
    """Hold the pipeline's study file for this process until :func:`release_study`. A second tune of
    the same pipeline and cache is refused: opening the study marks running trials failed, which is
    right after a kill and wrong while another tune's trials run (they would be counted twice)."""
    path = study_path(cache, pipeline)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = str(path.resolve())
    if key in _study_locks or fcntl is None:  # no flock (Windows): nothing to hold
        return
    try:  # never through a link, never blocking: the lock file is only ever locked, not read
        fd = os.open(f"{key}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o600)
    except OSError as exc:
        raise TrainflowError(f"the tune study's lock file {key}.lock cannot be opened ({exc.strerror}): "
                             "remove it, or give this tune another --cache") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise TrainflowError(f"another trainflow tune of pipeline {pipeline!r} is running on the study {path}: "
                             "wait for it to finish, or give this one another --cache") from None
    _study_locks[key] = fd


def release_study(cache: str, pipeline: str) -> None:
    """Let go of the study file :func:`lock_study` held (closing the descriptor releases the lock)."""
    fd = _study_locks.pop(str(study_path(cache, pipeline).resolve()), None)
    if fd is not None:
        os.close(fd)


def open_study(spec: PipelineSpec, space: list[Param], cache: str) -> Any:
    """The study of ``spec`` and ``space``, created or resumed; trials a killed tune left running
    are marked failed (they never count as done, and are run again as new trials). The caller holds
    :func:`lock_study`, so no live tune's trials are among them."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=storage_url(cache, spec.name), study_name=study_name(spec, space),
                                direction=DIRECTION, load_if_exists=True, pruner=pruner_of(spec))
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study._storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
    # a resumed study must not draw the random start-up points of the first run again: the seed moves
    # on by the trials already asked for (the same history gives the same seed, so runs stay repeatable)
    study.sampler = optuna.samplers.TPESampler(seed=spec.seed + len(study.get_trials(deepcopy=False)))
    return study


def pruner_of(spec: PipelineSpec) -> Any:
    """The pruner of ``spec.tune`` (a study's pruner is not stored: every process that asks builds it)."""
    import optuna

    t = spec.tune
    return (optuna.pruners.MedianPruner(n_startup_trials=t.startup_trials, n_warmup_steps=t.warmup_steps)
            if t.pruner == "median" else optuna.pruners.NopPruner())


def finished(study: Any) -> list[Any]:
    """Trials that count towards ``--trials``: complete or pruned."""
    import optuna

    S = optuna.trial.TrialState
    return study.get_trials(deepcopy=False, states=(S.COMPLETE, S.PRUNED))


# ---------------------------------------------------------------- one trial


def _pruning(trial: Any, keys: dict[str, bool], steps: list[int],
             seen: set[str], said: list[str]) -> Callable[[int, dict[str, float]], bool]:
    """The listener a fit reports its scores to (``keys``: the score names it listens to, each with
    whether higher is better): tells ``trial`` each step (recorded in ``steps``/``seen``) and answers
    stop when the pruner says so (why, in ``said``); once stopped it answers stop at once (an ensemble's
    next member, say, is not trained)."""

    def prune(step: int, values: dict[str, float]) -> bool:
        if said:
            return True
        key = next((k for k in keys if k in values), None)
        if key is None or not isinstance(values[key], (int, float)) or math.isnan(values[key]):
            return False
        steps.append(step)
        seen.add(key)
        trial.report(values[key] if keys[key] else -values[key], step)
        if trial.should_prune():
            said.append(f"pruned at step {step}: {key} {values[key]:.4g}")
        return bool(said)

    return prune


def run_trial(spec: PipelineSpec, split: SplitRef, cache: str, storage: str, name: str, trial_id: int,
              threads: int | None = None) -> dict[str, Any]:
    """Fit one trial's ``spec`` on the training part (``threads``: its CPU threads, None: the spec's
    ``resources.threads``), reporting its intermediate scores to the study
    and stopping when the pruner says so; the result is told to the study here (so that a tune killed
    after this returns keeps it). Returns ``state`` (complete | pruned), ``value`` (the selection score),
    ``selection``, ``steps`` (scores reported: epochs or folds run), ``model`` (complete trials),
    ``ran_on`` (``host:pid``) and ``thread``, also kept in the trial's user attributes."""
    import socket
    import threading

    import optuna

    from trainflow import modalities
    from trainflow import resources
    from trainflow.tasks.common.metrics import PRIMARY
    from trainflow.tasks.common.selection import Stopped, network_metric, reporting, selection_of

    study = optuna.load_study(study_name=name, storage=storage, pruner=pruner_of(spec))
    trial = optuna.trial.Trial(study, trial_id)
    primary = spec.evaluate.primary or PRIMARY[spec.task]
    keys = {f"cv_{primary}": True, network_metric(spec): network_metric(spec) != "val_loss"}
    steps: list[int] = []
    seen: set[str] = set()
    said: list[str] = []
    prune = _pruning(trial, keys, steps, seen, said)
    mod = modalities.get(spec.modality)
    ran_on = f"{socket.gethostname()}:{os.getpid()}"
    thread = threading.current_thread().name  # on a Dask worker: its executor's thread (Dask-Default-Threads-...)

    def attrs(**values: Any) -> dict[str, Any]:  # stored before the trial is told (then it is read-only)
        key = next((k for k in keys if k in seen), None)
        most = spec.split.cv_folds if (key or "").startswith("cv_") else int(getattr(spec, "train").epochs)
        out = {"steps": len(steps), "steps_max": most, "ran_on": ran_on, "thread": thread, **values}
        for k, v in out.items():
            study._storage.set_trial_user_attr(trial_id, k, v)
        return out

    try:
        threads = threads or resources.resolve(spec.resources.threads)
        with resources.using(threads), reporting(prune):
            model = mod.fit(split, spec.training_view(), cache)
        model = model.model_copy(update={"meta": {**model.meta, "threads": threads}})
    except Stopped:  # cross-validation stopped between folds by the pruner (said says where)
        if not said:
            raise
    if said:  # a network stops after the pruned epoch and saves what it has: not a candidate
        out = attrs(why=said[0])
        study.tell(trial.number, state=optuna.trial.TrialState.PRUNED)
        return {**out, "state": "pruned", "value": None, "selection": None, "model": None, "ran_on": ran_on}
    sel = selection_of(model, spec)
    if sel is None or not isinstance(sel.get("value"), (int, float)) or math.isnan(sel["value"]):
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
        raise TrainflowError(f"trial {trial.number}: the fit measured no selection score (no cross-validation, "
                             f"validation part or backtest); the tune cannot rank it.")
    out = attrs(selection=sel, model=model.model_dump(mode="json"))
    study.tell(trial.number, sel["value"] if sel.get("greater_is_better", True) else -sel["value"])
    return {**out, "state": "complete", "value": sel["value"], "selection": sel, "model": model, "ran_on": ran_on}


def stored_model(trial: Any) -> ModelRef | None:
    """The model a finished trial saved in the cache, if its files are still there and intact."""
    from trainflow.refs import damage

    raw = trial.user_attrs.get("model")
    if not raw:
        return None
    ref = ModelRef.model_validate(raw)
    return None if damage(ref) else ref


# ---------------------------------------------------------------- artifacts


def trials_table(study: Any, space: list[Param]) -> list[dict[str, Any]]:
    """One row per trial: number, state, parameters, selection score, epochs/folds run of the most."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        sel = t.user_attrs.get("selection") or {}
        rows.append({"trial": t.number, "state": t.state.name.lower(),
                     **{p.key: t.params.get(p.key) for p in space},
                     "selection_metric": sel.get("metric"), "selection_score": sel.get("value"),
                     "steps_run": t.user_attrs.get("steps", len(t.intermediate_values)),
                     "steps_max": t.user_attrs.get("steps_max")})
    return rows


def pruned_share(rows: list[dict[str, Any]]) -> tuple[int, int]:
    """(steps saved by pruning, steps the finished trials would have run unpruned)."""
    done = [r for r in rows if r["state"] in ("complete", "pruned")]
    saved = sum(max(0, (r["steps_max"] or 0) - r["steps_run"]) for r in done if r["state"] == "pruned")
    return saved, sum(r["steps_max"] or 0 for r in done)


def history_markdown(study: Any, title: str) -> str:
    """The optimisation history (each finished trial's score and the best so far) as a matplotlib
    PNG embedded in markdown (``data:image/png;base64``: the Prefect UI shows it)."""
    import base64
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    pruned = [t for t in study.get_trials(deepcopy=False) if t.state.name == "PRUNED"]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    if done:
        xs = [t.number for t in done]
        ys = [t.user_attrs.get("selection", {}).get("value", t.value) for t in done]
        greater = done[0].user_attrs.get("selection", {}).get("greater_is_better", True)
        best, acc = [], None
        for y in ys:
            acc = y if acc is None else (max(acc, y) if greater else min(acc, y))
            best.append(acc)
        ax.plot(xs, ys, "o", label="complete trial")
        ax.step(xs, best, where="post", label="best so far")
        ax.set_ylabel(done[0].user_attrs.get("selection", {}).get("metric", "score"))
    if pruned:
        ax.plot([t.number for t in pruned], [ax.get_ylim()[0]] * len(pruned), "x", color="grey",
                label="pruned trial")
    ax.set_xlabel("trial")
    ax.set_title(title)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f"## {title}\n\n![optimisation history](data:image/png;base64,{data})\n"


def importance_table(study: Any) -> list[dict[str, Any]]:
    """Parameter importance (Optuna's fANOVA-based default) over the complete trials; empty with
    fewer than two complete trials or one parameter that never varied."""
    import optuna

    done = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if len(done) < 2:
        return []
    try:
        scores = optuna.importance.get_param_importances(
            study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0))
    except (RuntimeError, ValueError):  # a parameter that never varied, a single distinct value
        return []
    return [{"parameter": k, "importance": float(v)} for k, v in scores.items()]
