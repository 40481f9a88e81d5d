"""trainflow: declarative ML pipelines that run as Prefect 3 flows.

The code lives in three packages: ``trainflow`` (errors, registry, data references),
``trainflow.flows`` (spec, flow wiring, CLI; the repository's ``flows/`` folder) and
``trainflow.tasks`` (one concern per module; the repository's ``tasks/`` folder).
"""

__version__ = "0.1.0"
