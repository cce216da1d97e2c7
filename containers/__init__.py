"""Declarative dependency-injector containers: wiring only, no logic."""

from containers.application import ApplicationContainer

__all__ = ["ApplicationContainer"]
