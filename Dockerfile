# syntax=docker/dockerfile:1
# Storekeeper's image: `docker build -t storekeeper .` (see README "Docker and compose").
# The builder stage turns the project and every dependency into wheels; the runtime stage
# installs only those wheels, so no compiler or build cache ends up in the image.

ARG PYTHON_VERSION=3.12

FROM python:${PYTHON_VERSION}-slim AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /build
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --wheel-dir /wheels .

FROM python:${PYTHON_VERSION}-slim AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    STOREKEEPER_ENV=production \
    STOREKEEPER_LOG_FORMAT=json \
    STOREKEEPER_HOST=0.0.0.0 \
    STOREKEEPER_PORT=8000
# A user of its own: the server never runs as root.
RUN groupadd --system --gid 10001 storekeeper \
    && useradd --system --uid 10001 --gid storekeeper --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin storekeeper
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels /wheels/*.whl
COPY --chmod=0755 docker/entrypoint.sh /usr/local/bin/storekeeper-entrypoint
WORKDIR /app
RUN chown storekeeper:storekeeper /app
USER 10001:10001
EXPOSE 8000
# Liveness only (no database): /health/ready is for load balancers and orchestrators.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('STOREKEEPER_PORT', '8000') + '/health', timeout=4)"]
# Exec form throughout: the entrypoint `exec`s the command, which is then the process that
# receives SIGTERM (run with `--init`, or compose's `init: true`, for a reaping PID 1).
ENTRYPOINT ["storekeeper-entrypoint"]
CMD ["storekeeper", "serve"]
