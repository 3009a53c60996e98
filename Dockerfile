FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
COPY ingest-pipelines ./ingest-pipelines
COPY kibana ./kibana
RUN pip install --no-cache-dir -e .
EXPOSE 8000
CMD ["logsight", "serve", "--host", "0.0.0.0", "--port", "8000"]
