"""myapp: dependency-injected background work-item processing."""

__version__ = "0.1.0"
