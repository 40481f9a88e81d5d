"""The sequence modalities: classification/regression of whole series (``sequence``) and forecasting
of one time series (``forecast``), sharing loaders, preprocessing and networks."""
