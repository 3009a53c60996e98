"""OTLP in: any OpenTelemetry SDK or collector exports spans, logs and metrics to logsight over
OTLP/HTTP (``logsight serve --otlp``). :mod:`~logsight.otlp.decode` turns payloads into stream
documents (the exporter's own mapping); :mod:`~logsight.otlp.receiver` stores them durably
before it acknowledges; the HTTP face is ``logsight.service.otlp``."""

from logsight.otlp.receiver import Answer, OtlpReceiver, ReceiverSettings

__all__ = ["Answer", "OtlpReceiver", "ReceiverSettings"]
