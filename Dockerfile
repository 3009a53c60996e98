# The logsight service image: the wheel (built in a first stage from this tree, the same
# artefact `pip install` gets), installed into a slim Python, run as an unprivileged user.
FROM python:3.11-slim AS build
WORKDIR /build
COPY pyproject.toml README.md ./
# src/ holds two symlinks (assets/ingest-pipelines, kibana-objects) into these folders: the
# wheel packages the pipelines and the Kibana saved objects through them
COPY ingest-pipelines ./ingest-pipelines
COPY kibana ./kibana
COPY src ./src
RUN pip wheel --no-cache-dir --no-deps -w /dist .

FROM python:3.11-slim
COPY --from=build /dist/ /tmp/dist/
RUN pip install --no-cache-dir /tmp/dist/*.whl \
    && rm -rf /tmp/dist \
    && useradd --create-home --uid 10001 --shell /usr/sbin/nologin logsight
USER logsight
WORKDIR /home/logsight
ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
EXPOSE 8000
# /health answers 200 while the cluster is reachable (503 otherwise) and needs no API key;
# the slim image has no curl, Python is there anyway
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=5 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]
CMD ["logsight", "serve", "--host", "0.0.0.0", "--port", "8000"]
