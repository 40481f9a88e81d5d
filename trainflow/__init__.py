"""trainflow: declarative ML pipelines that run as Prefect 3 flows.

The code lives in three packages: ``trainflow`` (errors, the component registry, the modality
interface, data references, trust and cache keys), ``trainflow.flows`` (flow wiring, CLI; the
repository's ``flows/`` folder) and ``trainflow.tasks`` (the stage code: ``common`` for what every
modality shares, then one subpackage per modality; the repository's ``tasks/`` folder).
"""

__version__ = "0.1.0"
