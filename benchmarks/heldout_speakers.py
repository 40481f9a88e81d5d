"""FSDD leave-one-speaker-out: what the audio demo's recipe scores on a voice it never heard.

    python benchmarks/heldout_speakers.py [--spec flows/specs/audio_digits.yaml] [--speakers theo yweweler]
                                          [--set KEY=VALUE ...] [--conventional]

For each speaker (default: all six of data/fsdd), the spec is trained with that speaker's 500 clips
as the test set (``split: {group: speaker, test: [<speaker>]}``) and every other speaker's clips as the training set,
then scored on the held-out clips; prints per-speaker accuracy, the mean and the minimum, and the
load average before and after. ``--conventional`` adds the spec's own split (recordings 0-4 of
every speaker as the test set). The stages are called directly (load, split, fit, evaluate of the
audio modality), without a Prefect server: what is measured is the model, not the orchestration.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import elapsed_line  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")


def score(spec_path: Path, overrides: list[str]) -> float:
    """Train ``spec_path`` with ``overrides`` in a throw-away cache; return the test accuracy. With
    ``preprocess.audio.select``, print the grouped cross-validation table (training speakers only)."""
    from trainflow import modalities, trust
    from trainflow.spec import load_spec
    from trainflow.tasks.common.load import load

    spec = load_spec(spec_path, overrides)
    mod = modalities.get(spec.modality)
    with tempfile.TemporaryDirectory(prefix="heldout-") as cache:
        ref = load(spec.data, cache, spec.modality, spec.split)  # the loader carries the split key (speaker)
        split = mod.split(ref, spec, cache)
        model = mod.fit(split, spec, cache)
        chosen = trust.read_json(Path(model.path) / "model.json").get("recipe_selection")
        if chosen:
            from trainflow.tasks.audio.select import describe

            print("   ", describe(chosen), flush=True)
            for row in chosen["table"]:
                print(f"    | {row['candidate']} | {row['changes']} | {row['accuracy']:.3f} | {row['lowest fold']:.3f} |")
        return float(mod.evaluate(model, split, spec, str(Path(cache) / "plots")).metrics["accuracy"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--spec", default=str(REPO / "flows/specs/audio_digits.yaml"))
    p.add_argument("--speakers", nargs="*", default=list(SPEAKERS), choices=SPEAKERS,
                   help="held-out speakers to score (none: with --conventional, only the spec's own split)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--conventional", action="store_true", help="also score the spec's own split")
    args = p.parse_args(argv)
    print(f"load average before: {' / '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)
    t0, c0 = time.perf_counter(), time.process_time()
    rows = []
    if args.conventional:
        rows.append(("conventional split", score(Path(args.spec), args.overrides)))
        print(f"| {rows[-1][0]} | {rows[-1][1]:.3f} |", flush=True)
    held = []
    for speaker in args.speakers:
        acc = score(Path(args.spec), [*args.overrides, "split.column=null", "split.group=speaker",
                                      f"split.test=[{speaker}]"])
        held.append(acc)
        print(f"| {speaker} held out | {acc:.3f} |", flush=True)
    if held:
        print(f"| mean over {len(held)} held-out speakers | {statistics.mean(held):.3f} |")
        print(f"| lowest | {min(held):.3f} |")
    print(elapsed_line(t0, c0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
