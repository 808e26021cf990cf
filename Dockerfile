# The app image for the scale-out shape (docker-compose.yml). CPU-only torch from the pinned wheel.
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends build-essential && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY ingest ingest
COPY rag_app rag_app
COPY configs configs
COPY samples samples
RUN pip install --no-cache-dir --extra-index-url https://download.pytorch.org/whl/cpu -e .
ENV RAG_CONFIG=/app/configs/milvus-server.yaml
EXPOSE 7860
CMD ["rag-app", "--host", "0.0.0.0", "--port", "7860"]
