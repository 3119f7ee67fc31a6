# One image for every role (api, worker, scheduler, migrate); the command picks the role.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY fhir_bridge ./fhir_bridge
COPY rules ./rules
COPY channels ./channels
COPY smart_app ./smart_app
RUN pip install --no-cache-dir . && useradd --create-home bridge
USER bridge
EXPOSE 8000
CMD ["fhir-bridge", "serve"]
