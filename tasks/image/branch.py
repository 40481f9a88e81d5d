"""The image modality as one input of a multimodal pipeline (:class:`trainflow.tasks.common.branch.Branch`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from trainflow.tasks.common.branch import Items, NetworkBranch, encoder_of, npz_split, stem


class ImageBranch(NetworkBranch):
    """Images (``[n, h, w, c]`` pixels): the image modality's scaling and CNN."""

    modality = "image"

    def items(self, loaded: Any, options: dict[str, Any]) -> Items:
        if loaded.skipped:  # data.skip_unreadable (the default): such a file has no pixels to fuse
            from trainflow.alerts import warn

            warn(f"{len(loaded.skipped)} unreadable or odd-sized image file(s) of '{loaded.source}' left out of the "
                 f"join, e.g. {loaded.skipped[0]}")
        keys = {"id": list(loaded.files), "stem": [stem(f) for f in loaded.files]} if loaded.files else {}
        return Items(loaded.x, np.asarray(loaded.classes, dtype=object)[loaded.y].astype(str), keys, loaded.is_test,
                     {"max_value": loaded.max_value, "source": loaded.source, "loader_options": options},
                     loaded.keys)

    def write_split(self, data, labels, test, classes, meta, folder):
        index = {c: i for i, c in enumerate(classes)}
        y = np.asarray([index[v] for v in labels], dtype=np.int64)
        n, h, w, c = data.shape
        return npz_split(folder, {"x": data, "y": y}, test, "image",
                         {"classes": classes, "max_value": meta["max_value"], "shape": [h, w, c],
                          "source": meta["source"], "loader_options": meta["loader_options"]})

    def write_new(self, data, keys, folder, options):
        from trainflow.refs import save_npz

        path = Path(folder) / "images.npz"
        save_npz(path, x=data, names=np.asarray(keys, dtype=str))  # predict reads 'names' as the images' ids
        return path

    def tensors(self, folder, data):
        _, config = self._model(folder)
        return (self.module.to_tensor(data, config["divisor"], config["mean"], config["std"]),)

    def encoder(self, folder, hidden, width):
        return encoder_of(self._model(folder)[0])

    def summaries(self, folder, data):
        from trainflow import trust
        from trainflow.tasks.common.neural import CONFIG_FILE
        from trainflow.tasks.image.drift import image_summaries

        return image_summaries(data, trust.read_json(Path(folder) / CONFIG_FILE)["max_value"])

    def read_new(self, path, folder, options):
        x, names = self.module.read_new_images(path, self._model(folder)[1])
        return Items(x, None, {"id": names, "stem": [stem(n) for n in names]})
