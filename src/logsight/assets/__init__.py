"""Index assets: ingest pipelines, index templates, data streams, lifecycle policies.

``install(engine)`` is idempotent and versioned: every asset carries a content hash, an asset
whose hash matches is left alone, a changed one is upgraded in place.
"""

from logsight.assets.install import (
    ASSET_VERSION,
    AssetReport,
    LifecycleConfig,
    desired_assets,
    install,
    load_pipeline,
)

__all__ = [
    "ASSET_VERSION",
    "AssetReport",
    "LifecycleConfig",
    "desired_assets",
    "install",
    "load_pipeline",
]
