"""The names a face checks before it runs a job (services, models, versions, namespaces that
have sent data), read by :mod:`logsight.sources.catalog`: faces reach sources through jobs."""

from logsight.sources.catalog import KnownNames, models_in_window, namespaces_seen, values_seen

__all__ = ["KnownNames", "models_in_window", "namespaces_seen", "values_seen"]
