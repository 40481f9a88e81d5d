"""The image modality: image loaders, per-channel normalization and augmentation, the CNN."""
