FROM python:3.11-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends \
        softhsm2 poppler-utils fonts-liberation \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY gateway gateway
COPY signing signing
COPY adapters adapters
COPY schemas schemas
RUN pip install --no-cache-dir .
USER nobody
EXPOSE 8080
ENV EDOC_HTTP_HOST=0.0.0.0
CMD ["sh", "-c", "edoc-gateway migrate && exec edoc-gateway serve"]
