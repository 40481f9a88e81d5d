"""Pipeline stages and components, one concern per module (installed as ``trainflow.tasks``).

Every module here is imported by :func:`trainflow.registry.discover`, so a module dropped into
this folder can register components with :func:`trainflow.registry.component`. Modules must not
import heavy libraries (torch, great_expectations) at import time: do it inside functions.
"""
