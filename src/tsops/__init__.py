"""tsops: automated MLOps for many irregular time series."""

__version__ = "0.1.0"
