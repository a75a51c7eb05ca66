# One image for every skiplock service; the command picks the role.
FROM python:3.12-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY api api
COPY cli cli
COPY common common
COPY coordinator coordinator
COPY proto proto
COPY sql sql
COPY worker worker
COPY ui ui
COPY client client
RUN pip install --no-cache-dir . && useradd --create-home skiplock
USER skiplock
ENTRYPOINT ["skiplock"]
