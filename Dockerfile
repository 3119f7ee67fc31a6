# One image for every role (migrate, api, worker, scheduler); the command picks the role.
FROM python:3.11-slim

# Logs reach `docker compose logs` at once; no .pyc files written at run time.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY fhir_bridge ./fhir_bridge
COPY rules ./rules
COPY channels ./channels
COPY smart_app ./smart_app
RUN pip install .

# The service runs as a fixed, unprivileged user. Its data folder (Celery beat schedule,
# development outbox, anything else the service keeps) is created and handed to that user
# *before* it is declared a volume: Docker copies the folder, ownership included, into a
# new named volume, so the non-root user can write there. The fixed UID/GID lets the host
# grant the same user read access to the key in ./secrets (see .env.example).
ARG BRIDGE_UID=10001
ARG BRIDGE_GID=10001
RUN groupadd --system --gid "${BRIDGE_GID}" bridge \
    && useradd --system --no-log-init --uid "${BRIDGE_UID}" --gid bridge \
       --create-home --home-dir /home/bridge --shell /usr/sbin/nologin bridge \
    && mkdir -p /data \
    && chown bridge:bridge /data \
    && chmod 0750 /data
# Everything the service keeps on disk (schedule, outbox, ...) goes under the data folder.
ENV FHIR_BRIDGE_DATA_DIR=/data
VOLUME ["/data"]

USER bridge:bridge
EXPOSE 8000
CMD ["fhir-bridge", "serve"]
