"""Flow wiring and the command line (installed as ``trainflow.flows``); the spec lives in ``trainflow.spec``."""
