"""The rules of ``forecast_panel_rules.py table``: each reads the backtest only; the test horizon scores its choice.

A candidate's panel mean is over the series that scored it: where the collected first origin was too early
for some candidates on short series (collected before each origin left room for every candidate), the means
compare different series; recollect with the current code for paired means.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable

import numpy as np

NAMES = ("naive", "seasonal_naive", "drift", "ets", "theta", "arima", "combination")
LEVELS = (80, 95)
MARGIN = 0.2


def _view(series: dict, k: int, scale: str = "step") -> dict[str, dict[str, list[float]]]:
    """Per series: each candidate's scaled backtest errors at the last ``k`` origins."""
    out = {}
    for sid, s in series.items():
        denom = s["mean_step"] if scale == "step" else s["snaive_scale"]
        if not denom or not math.isfinite(denom):
            denom = s["mean_step"] or 1.0
        out[sid] = {n: [e / denom for e in r["bt"][-k:]] for n, r in s["cand"].items() if "bt" in r}
    return out


def _panel_best(view: dict, agg: Callable[[list[float]], float]) -> str:
    means = {}
    for n in NAMES:
        vals = [float(np.mean(v[n])) for v in view.values() if n in v]
        if len(vals) >= max(1, len(view) // 2):
            means[n] = agg(vals)
    return min(means, key=means.get)


def _relative(view: dict) -> dict:
    """Each candidate's backtest error over the seasonal naive's on the same series (log; scale-free)."""
    out = {}
    for sid, v in view.items():
        base = float(np.mean(v.get("seasonal_naive", [math.nan])))
        out[sid] = {n: [math.log(max(float(np.mean(e)), 1e-12) / base)] for n, e in v.items()
                    if base > 0 and math.isfinite(base)}
    return out


def _ranks(view: dict) -> dict:
    out = {}
    for sid, v in view.items():
        means = {n: float(np.mean(e)) for n, e in v.items()}
        order = sorted(means, key=means.get)
        out[sid] = {n: [float(order.index(n))] for n in means}
    return out


def _per_series(view: dict, default: str, margin: float) -> dict[str, str]:
    picks = {}
    for sid, v in view.items():
        means = {n: float(np.mean(e)) for n, e in v.items()}
        if not means:
            picks[sid] = None
            continue
        own = min(means, key=means.get)
        picks[sid] = default if default in means and means[own] >= (1 - margin) * means[default] else own
    return picks


def _switch_helps(series: dict, k: int) -> bool:
    """An early check (a mean-error champion's switches kept when their mean on the last origin is lower,
    chosen on the origins before it); :func:`shipped_rules` has the one shipped now."""
    early = {sid: {n: e[:-1] for n, e in v.items() if len(e) >= 2} for sid, v in _view(series, k).items()}
    last = {sid: {n: e[-1] for n, e in v.items()} for sid, v in _view(series, k).items()}
    best = _panel_best(early, np.mean)
    picks = _per_series(early, best, MARGIN)
    sw = [last[s][p] for s, p in picks.items() if p and best in early[s]]
    kept = [last[s][best] for s, p in picks.items() if p and best in early[s]]
    return float(np.mean(sw)) < float(np.mean(kept))


def rules(series: dict, k: int) -> dict[str, dict[str, str]]:
    """Each selection rule's pick per series with the last ``k`` origins."""
    view = _view(series, k)
    champ = _panel_best(view, np.mean)
    out = {
        f"panel champion, mean scaled error ({champ})": {s: champ for s in view},
        "early: mean-error champion + switches if their held-out mean is lower": _per_series(view, champ, MARGIN) if _switch_helps(series, k)
        else {s: champ for s in view},
        "per series: lowest backtest error": _per_series(view, champ, 0.0),
    }
    med = _panel_best(view, np.median)
    out[f"panel champion, median scaled error ({med})"] = {s: med for s in view}
    rel = _panel_best(_relative(view), np.mean)
    out[f"panel champion, geometric mean error relative to seasonal naive ({rel})"] = {s: rel for s in view}
    rk = _panel_best(_ranks(view), np.mean)
    out[f"panel champion, mean rank ({rk})"] = {s: rk for s in view}
    snv = _view(series, k, "snaive")
    sn = _panel_best(snv, np.mean)
    out[f"panel champion, error / seasonal naive scale ({sn})"] = {s: sn for s in view}
    return out


def _phase_one(series: dict, k: int) -> dict[str, dict]:
    """The collected backtest as ``panel.backtest_series`` returns it, from the last ``k`` origins."""
    out = {}
    for sid, s in series.items():
        step = s["mean_step"] or 1.0
        per = {n: r["bt"][-k:] for n, r in s["cand"].items() if "bt" in r}
        out[sid] = {"backtest": {n: float(np.mean(v)) for n, v in per.items()},
                    "scaled": {n: float(np.mean(v)) / step for n, v in per.items()},
                    "origins": {n: [e / step for e in v] for n, v in per.items()}}
    return out


def shipped_rules(series: dict, k: int) -> dict[str, dict[str, str]]:
    """The rule ``tasks/forecast/panel.py`` ships (its own functions), and variants of it."""
    from trainflow.tasks.forecast import panel

    one = _phase_one(series, k)
    names = list(NAMES)
    best = panel.champion(one, names)
    helps, switched, kept, _ = panel.switching_helps(one, names)
    lower = switched < kept
    out = {f"shipped: geometric-mean champion + switches if they earn it ({best})":
           {s: panel.pick(r, best, helps) for s, r in one.items()},
           # before 2026-12-08: switches kept whenever their mean on the held-out origin was lower, however slightly
           f"geometric-mean champion + switches if their held-out mean is lower ({best})":
           {s: panel.pick(r, best, lower) for s, r in one.items()},
           f"geometric-mean champion, no switches ({best})": {s: panel.pick(r, best, False) for s, r in one.items()}}
    ranks = panel.ranking(one, names)
    for margin in (0.01, 0.02, 0.05):
        # the combination unless a candidate's mean log relative error is lower by more than log(1 - margin)
        alt = best if ranks.get(best, 0) < ranks.get("combination", math.inf) + math.log(1 - margin) else "combination"
        out[f"combination unless beaten by {margin:.0%} ({alt})"] = {s: panel.pick(r, alt, helps) for s, r in one.items()}
    return out


def blend_mase(series: dict, k: int, top: int, how: str) -> tuple[float, list[str]]:
    """Test MASE of the ``how`` (median or mean) of the ``top`` candidates of the panel ranking."""
    from trainflow.tasks.forecast import panel

    one = _phase_one(series, k)
    chosen = [n for n in panel.ranking(one, list(NAMES)) if n != "seasonal_naive" or top == 1][:top]
    agg = np.median if how == "median" else np.mean
    mase = []
    for s in series.values():
        errs = [np.asarray(s["cand"][n]["test"]["err"]) for n in chosen if "test" in s["cand"].get(n, {})]
        errs = errs or [np.asarray(s["cand"]["naive"]["test"]["err"])]
        mase.append(np.mean(np.abs(agg(errs, axis=0))) / s["snaive_scale"])
    return float(np.nanmean(mase)), chosen


def _factors(series: dict, name: str, k: int, which: str, season: int, horizon: int) -> dict[int, np.ndarray]:
    """Conformal factors per step pooled over the series that backtested ``name``, from the last ``k``
    origins (``which``: 'all' of them, or only the 'last')."""
    from trainflow.tasks.forecast import calibration

    samples = []
    for s in series.values():
        r = s["cand"].get(name, {})
        if "ratios" not in r:
            continue
        cuts = s["cuts"][-k:]
        keep = [i for i, o in enumerate(cuts) if season < 2 or o >= 2 * season + 2]
        if which == "last":
            keep = [i for i in keep if i == len(cuts) - 1]
        elif which == "last2":
            keep = [i for i in keep if i >= len(cuts) - 2]
        samples.append({int(lv): [rows[-k:][i] for i in keep] for lv, rows in r["ratios"].items()})
    found = calibration.factors(samples, list(LEVELS), horizon)
    return {lv: np.asarray(f) for lv, f in found.items()}


def score(series: dict, picks: dict[str, str | None], factors: dict[str, dict[int, np.ndarray]],
          fallback: str = "naive") -> dict[str, float]:
    """Mean MASE and coverage of each series' pick on the test horizon, half-widths scaled by ``factors``."""
    mase, inside, points = [], Counter(), 0
    for sid, s in series.items():
        name = picks.get(sid) or fallback
        t = s["cand"][name].get("test") or s["cand"][fallback]["test"]
        used = t["chosen"]
        err = np.asarray(t["err"])
        mase.append(np.mean(np.abs(err)) / s["snaive_scale"])
        f = factors.get(used, {})
        inner = None
        for lv in LEVELS:
            half = np.asarray(t["half"][str(lv)]) * (f[lv][:len(err)] if lv in f else 1.0)
            if inner is not None:
                half = np.maximum(half, inner)
            inside[lv] += int(np.sum(np.abs(err) <= half))
            inner = half
        points += len(err)
    out = {"mase": float(np.nanmean(mase))}
    out |= {f"cov{lv}": 100 * inside[lv] / points for lv in LEVELS}
    return out


def diagnose(name: str, data: dict) -> None:
    """Why the backtest prefers what it prefers: mean scaled error per origin and the test MASE per model."""
    series = data["series"]
    k = max(len(s["cuts"]) for s in series.values())
    view = _view(series, k)
    print(f"\n{name}: mean scaled backtest error per origin (oldest first, series with all {k} origins) and test MASE")
    full = [v for v in view.values() if all(len(e) == k for e in v.values()) and len(v) == len(NAMES)]
    print(f"  series with {k} origins for every candidate: {len(full)} of {len(view)}")
    for n in NAMES:
        per = np.mean([v[n] for v in full], axis=0) if full else []
        test = np.nanmean([np.mean(np.abs(s["cand"][n]["test"]["err"])) / s["snaive_scale"]
                           for s in series.values() if "test" in s["cand"][n]])
        best_share = np.mean([min(v, key=lambda m: np.mean(v[m])) == n for v in full]) if full else 0
        print(f"  {n:15s} " + " ".join(f"{x:6.3f}" for x in per) + f" | test MASE {test:.3f} | best on "
              f"{100 * best_share:.0f}% of series ({k}-origin mean)")


def table(results: dict) -> None:
    for name, data in results.items():
        diagnose(name, data)
    sets = list(results)
    rows: dict[str, dict[str, dict[str, float]]] = {}
    for name in sets:
        data = results[name]
        series, season, h = data["series"], data["season"], data["horizon"]
        collected = max(len(s["cuts"]) for s in series.values())
        for k in (k for k in (3, 4, 6, 8) if k <= collected):
            facs = {which: {n: _factors(series, n, k, which, season, h) for n in NAMES} for which in ("all", "last")}
            facs["none"] = {}  # each model's own intervals, uncalibrated
            for rule, picks in (rules(series, k) | shipped_rules(series, k)).items():
                label = rule.split(" (")[0]
                for which in ("all", "last", "none"):
                    rows.setdefault(f"{label} | K={k} | calib {which}", {})[name] = score(series, picks, facs[which]) | {
                        "pick": Counter(p for p in picks.values()).most_common(2)}
            if k == 3:
                for n in ("ets", "theta", "arima", "combination"):
                    for which in ("all", "last"):
                        rows.setdefault(f"fixed {n} | K={k} | calib {which}", {})[name] = score(
                            series, {s: n for s in series}, facs[which])
    for name in sets:
        for k in (3, 6):
            for top in (2, 3, 4):
                for how in ("median", "mean"):
                    m, chosen = blend_mase(results[name]["series"], k, top, how)
                    print(f"{name}: {how} of the top {top} of the ranking at {k} origins ({', '.join(chosen)}): "
                          f"MASE {m:.3f}")
    print("\n| rule | origins | calibration | " + " | ".join(f"{s} MASE | {s} 80/95 %" for s in sets) + " | picks |")
    print("|---|---|---|" + "---|---|" * len(sets) + "---|")
    for label, by_set in rows.items():
        rule, k, which = label.split(" | ")
        cells = " | ".join(f"{by_set[s]['mase']:.3f} | {by_set[s]['cov80']:.1f} / {by_set[s]['cov95']:.1f}"
                           if s in by_set else "- | -" for s in sets)
        picks = "; ".join(f"{s[:2]}: " + ",".join(f"{p}" for p, _ in by_set[s].get("pick", [])) for s in sets
                          if s in by_set)
        print(f"| {rule} | {k[2:]} | {which.split()[1]} | {cells} | {picks} |")
