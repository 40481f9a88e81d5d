"""The sequence modality: classification/regression of whole series, with its loaders, preprocessing
and networks (forecasting is in :mod:`trainflow.tasks.forecast`; the networks it builds come through
the registry)."""
