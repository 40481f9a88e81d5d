"""FSDD leave-one-speaker-out, one network per (recipe, held-out speaker, seed): what a recipe and an
ensemble of seeds score on voices never heard, cheaper than benchmarks/heldout_speakers.py.

    python benchmarks/heldout_speakers_seeds.py train NAME '{"ls": 0.1}' [--seeds 0 1 2] [--speakers lucas ...]
    python benchmarks/heldout_speakers_seeds.py report [NAME[:SEEDS] ...]   # e.g. base ls01:0,1,2 base+ls01

The features of the 3,000 clips are computed once (the new-speaker spec's recipe: 13 per-clip
normalised MFCCs of 32 mel bands, 0.8 s) with every clip also at a 5 x 5 grid of speeds and VTLP
factors (0.8-1.2); they are cached in --out. ``train`` trains the spec's CNN (width 16, 20 epochs,
Adam 0.003, cosine, batches of 64, the spec's warps and masks) on five speakers and saves the sixth's
class probabilities at every grid point. The loop is a short copy of the shared one, so that a recipe
can also mix examples *and their labels* (``mixup``: Beta(a, a) weights, Zhang et al. 2018), which the
shared loop cannot; its figures are those of this script, not of the spec (the shared loop orders
batches with another generator). Recipe keys: ``ls`` (label smoothing), ``mixup`` (a), ``aug``
(changes of preprocess.audio's warps and masks, e.g. {"time_stretch": 0.3}), ``pre`` (changes of the
features, e.g. {"n_mels": 40}: their own cached features), ``epochs``, ``width``, ``dropout``, ``wd`` (Adam's
weight decay).
``report`` prints each speaker's accuracy with the probabilities averaged over the 3 x 3 grid
(0.9-1.1, the spec's test-time averaging; ``--extra`` adds grid points) and over the networks named
(``a+b``: both recipes' seeds).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")
GRID = (0.8, 0.9, 1.0, 1.1, 1.2)
TTA = [GRID.index(s) * len(GRID) + GRID.index(v) for s in (0.9, 1.0, 1.1) for v in (0.9, 1.0, 1.1)]
SPEC = dict(features="mfcc", n_mfcc=13, duration=0.8, n_fft=256, hop_length=160, n_mels=32, normalize="per_clip",
            freq_warp=0.1, time_stretch=0.1, time_shift=3, freq_masks=1, freq_mask_width=4, time_masks=1,
            time_mask_width=5)


def features(out: Path, changes: dict | None = None):
    """(config, per-clip normalised features [n, bins, T], real frames, the grid's features [25, n, bins, T],
    digits, speakers), cached in ``out``; ``changes``: of the features' fields (n_mels, n_mfcc, ...), cached apart."""
    import soundfile as sf

    from trainflow.tasks.audio.features import AudioFeatures, per_clip, wave_features
    from trainflow.tasks.audio.perturb import voiced_at

    pre = AudioFeatures.model_validate({**SPEC, **(changes or {})})
    tag = "_".join(f"{k}-{v}" for k, v in sorted((changes or {}).items()))
    path = out / (f"features_{tag}.npz" if tag else "features.npz")
    if not path.exists():
        files = sorted((REPO / "data/fsdd").glob("*.flac"))
        waves = [sf.read(f, dtype="float32")[0] for f in files]
        x, frames = wave_features(waves, 8000, pre)
        grid = [voiced_at(waves, 8000, pre, s, a) for s in GRID for a in GRID]
        np.savez(path, x=per_clip(x, frames), frames=frames, y=[int(f.name.split("_")[0]) for f in files],
                 spk=[f.name.split("_")[1] for f in files],
                 grid=np.stack([per_clip(g, np.full(len(g), g.shape[2])) for g in grid]))
    d = np.load(path)
    return pre, d["x"], d["frames"], d["grid"], d["y"], d["spk"]


def train_one(recipe: dict, speaker: str, seed: int, data: tuple) -> np.ndarray:
    """The held-out ``speaker``'s class probabilities [25, clips, 10] from one network of ``recipe``."""
    import torch
    import torch.nn.functional as F

    from trainflow.tasks.audio.features import FrequencyNormalizer, spec_augmenter
    from trainflow.tasks.audio.models import AudioCnnConfig, build_audio_cnn

    pre, x, frames, grid, y, spk = data
    tr, te = np.flatnonzero(spk != speaker), np.flatnonzero(spk == speaker)
    norm = FrequencyNormalizer("per_clip").fit(x[tr], frames[tr])
    xt, yt = torch.from_numpy(norm.transform(x[tr])), torch.from_numpy(y[tr])
    augment = spec_augmenter(pre.model_copy(update=recipe.get("aug", {})))
    torch.manual_seed(seed)
    model = build_audio_cnn(AudioCnnConfig(width=recipe.get("width", 16), depth=3, padding="same", batch_norm=True,
                                           dropout=recipe.get("dropout", 0.2)), bins=x.shape[1], frames=x.shape[2], n_classes=10)
    epochs, ls, mixup = recipe.get("epochs", 20), recipe.get("ls", 0.0), recipe.get("mixup", 0.0)
    opt = torch.optim.Adam(model.parameters(), lr=0.003, weight_decay=recipe.get("wd", 0.0))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    gen, beta = torch.Generator().manual_seed(seed), np.random.default_rng(seed)
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(tr), generator=gen).split(64):
            xb, yb, lam, perm = augment(xt[idx]), yt[idx], 1.0, None
            if mixup:  # the batch mixed with a permutation of itself, the two losses weighted alike
                lam, perm = float(beta.beta(mixup, mixup)), torch.randperm(len(idx))
                xb = lam * xb + (1 - lam) * xb[perm]
            out = model(xb, None)
            loss = lam * F.cross_entropy(out, yb, label_smoothing=ls)
            if perm is not None:
                loss = loss + (1 - lam) * F.cross_entropy(out, yb[perm], label_smoothing=ls)
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    model.eval()
    with torch.no_grad():
        return np.stack([model(torch.from_numpy(norm.transform(g[te])), None).softmax(-1).numpy() for g in grid])


def accuracy(out: Path, members: list[tuple[str, int]], speaker: str, tta: list[int] = TTA) -> float | None:
    """Accuracy on ``speaker`` of the networks ``members`` (name, seed), probabilities averaged over them and
    the grid points ``tta`` (default: the 3 x 3 of the spec's test-time averaging)."""
    files = [out / name / f"{speaker}_{seed}.npz" for name, seed in members]
    if not all(f.exists() for f in files):
        return None
    runs = [np.load(f) for f in files]
    proba = np.mean([r["probs"][tta].mean(0) for r in runs], axis=0)
    return float((proba.argmax(1) == runs[0]["y"]).mean())


def members_of(out: Path, arg: str) -> list[tuple[str, int]]:
    """``name[:s,s]`` or ``a+b``: the (recipe, seed) networks it names (every seed trained by default)."""
    found = []
    for part in arg.split("+"):
        name, _, seeds = part.partition(":")
        have = sorted({int(f.stem.rsplit("_", 1)[1]) for f in (out / name).glob("*.npz")})
        found += [(name, s) for s in ([int(s) for s in seeds.split(",")] if seeds else have)]
    return found


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=("train", "report"))
    p.add_argument("args", nargs="*", help="train: NAME RECIPE-JSON; report: networks to average")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--speakers", nargs="+", default=list(SPEAKERS), choices=SPEAKERS)
    p.add_argument("--out", type=Path, default=Path("/tmp/heldout_seeds"))
    p.add_argument("--extra", nargs="*", default=[], metavar="SPEED,VTLP",
                   help="report: grid points averaged besides the 3 x 3 (e.g. 0.8,1.2 1.2,0.8: two tempos, the "
                        "formants about kept)")
    a = p.parse_args(argv)
    tta = TTA + [GRID.index(float(s)) * len(GRID) + GRID.index(float(v)) for s, v in (e.split(",") for e in a.extra)]
    a.out.mkdir(parents=True, exist_ok=True)
    if a.mode == "report":
        print("| networks | " + " | ".join(SPEAKERS) + " | mean | lowest |\n|" + "---|" * 9)
        for arg in a.args or sorted(d.name for d in a.out.iterdir() if d.is_dir()):
            accs = [accuracy(a.out, members_of(a.out, arg), s, tta) for s in SPEAKERS]
            done = [x for x in accs if x is not None]
            tail = f"{np.mean(done):.3f} | {min(done):.3f}" if len(done) == len(SPEAKERS) else " | "
            print(f"| {arg} | " + " | ".join("" if x is None else f"{x:.3f}" for x in accs) + f" | {tail} |")
        return 0
    import torch

    torch.set_num_threads(1)
    name, recipe = a.args[0], json.loads(a.args[1])
    data, folder = features(a.out, recipe.get("pre")), a.out / name
    folder.mkdir(exist_ok=True)
    for seed in a.seeds:
        for speaker in a.speakers:
            t0 = time.process_time()
            probs = train_one(recipe, speaker, seed, data)
            np.savez(folder / f"{speaker}_{seed}.npz", probs=probs, y=data[4][data[5] == speaker])
            print(f"{name} seed {seed} {speaker}: {accuracy(a.out, [(name, seed)], speaker):.3f} "
                  f"({time.process_time() - t0:.0f} s CPU)", flush=True)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
