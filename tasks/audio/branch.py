"""The audio modality as one input of a multimodal pipeline (:class:`trainflow.tasks.common.branch.Branch`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from trainflow.refs import DataRef, SplitRef, file_digest, load_npz, save_npz
from trainflow.tasks.audio.features import AudioFeatures
from trainflow.tasks.common.branch import Items, NetworkBranch, stem


class AudioBranch(NetworkBranch):
    """Clips (float32 mono waves at the loader's rate): the audio modality's features, normalisation
    fitted on the training clips, and network; intermediate fusion uses the network's ``encode``."""

    modality = "audio"
    n_tensors = 2  # features [n, bins, frames] and the frame mask [n, frames]

    def items(self, loaded: Any, options: dict[str, Any]) -> Items:
        from trainflow.alerts import warn

        ok = [i for i, info in enumerate(loaded.info) if info["readable"]]
        if len(ok) < len(loaded.waves):  # data.unreadable: skip; such a clip has no wave to fuse
            warn(f"{len(loaded.waves) - len(ok)} unreadable clip(s) of '{loaded.source}' left out of the join")
        files = [loaded.files[i] for i in ok]
        labels = None if loaded.labels is None else np.asarray([loaded.labels[i] for i in ok], dtype=str)
        return Items([loaded.waves[i] for i in ok], labels, {"id": files, "stem": [stem(f) for f in files]},
                     None if loaded.is_test is None else np.asarray(loaded.is_test)[ok],
                     {"sample_rate": loaded.sample_rate, "source": loaded.source, "loader_options": options},
                     None if loaded.keys is None else np.asarray(loaded.keys)[ok])

    def take(self, data, idx):
        return [data[int(i)] for i in idx]

    def blank(self, data, n):
        return [np.zeros_like(data[0]) for _ in range(n)]  # silence as long as a real clip

    def concat(self, parts):
        return [w for p in parts for w in p]

    def save(self, data, path):
        path = path.with_suffix(".npz")
        save_npz(path, **self.module.pack_waves(data))
        return path

    def load(self, path):
        return self.module.waves_of(load_npz(path))

    def write_split(self, data, labels, test, classes, meta, folder):
        """The audio modality's stored clips (waves, offsets, labels) for each part."""
        arrays = {**self.module.pack_waves(data), "labels": np.asarray(labels, dtype=str)}
        refs = {}
        for part, mask in (("train", ~test), ("test", test)):
            path = folder / f"{part}.npz"
            save_npz(path, **self.module.subset(arrays, np.flatnonzero(mask)))
            refs[part] = DataRef(path=str(path), digest=file_digest(path), modality="audio",
                                 meta={**meta, "rows": int(mask.sum()), "notes": []})
        return SplitRef(train=refs["train"], test=refs["test"], meta={"notes": []})

    def write_new(self, data, keys, folder, options):
        """Each clip as a float WAV named by its key (a stem gets ``.wav``; an id, a file name relative to
        the audio folder, keeps its name and subfolders), read back by :func:`new_clips` at the loader's rate."""
        import soundfile as sf

        from trainflow.tasks.audio.loaders import AUDIO_SUFFIXES, AudioOptions

        rate = int(options.get("sample_rate") or AudioOptions.model_fields["sample_rate"].default)
        root = Path(folder) / "clips"
        for wave, key in zip(data, keys):
            name = key if key.lower().endswith(AUDIO_SUFFIXES) else f"{key}.wav"
            path = (root / name).resolve()
            if not path.is_relative_to(root.resolve()):
                return None  # a key such as '../x' names no file inside the folder: no keyed copy
            path.parent.mkdir(parents=True, exist_ok=True)
            # WAV content whatever the name's suffix: libsndfile reads a file by its header
            sf.write(path, np.asarray(wave, np.float32), rate, subtype="FLOAT", format="WAV")
        return root

    def tensors(self, folder, data):
        import torch

        x, mask = self.module.features_of(data, self._model(folder)[1])
        return torch.from_numpy(x), torch.from_numpy(mask)

    def features(self, folder, data):
        return self.tensors(folder, data)[0].reshape(len(data), -1).numpy()  # the frame mask is implied

    def encoder(self, folder, hidden, width):
        from trainflow.tasks.audio.networks import encoder_and_width

        model, config = self._model(folder)
        return encoder_and_width(model, AudioFeatures.model_validate(config["features"]).bins, config["frames"])

    def summaries(self, folder, data):
        from trainflow import trust
        from trainflow.tasks.common.drift import signal_summaries
        from trainflow.tasks.common.neural import CONFIG_FILE

        return signal_summaries(data, rate=trust.read_json(Path(folder) / CONFIG_FILE)["sample_rate"])

    def read_new(self, path, folder, options):
        waves, names = self.module.new_clips(path, self._model(folder)[1])
        return Items(waves, None, {"id": names, "stem": [stem(n) for n in names]})
