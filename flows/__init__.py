"""Flow wiring, the pipeline spec and the command line (installed as ``trainflow.flows``)."""
