"""Run the development EHR alone, without samples.

`python -m fhir_bridge.sandbox --host 127.0.0.1 --port 8080`; `fhir-bridge sandbox` adds samples.
"""

from __future__ import annotations

import argparse
import logging

import uvicorn

from fhir_bridge.sandbox.app import create_app
from fhir_bridge.sandbox.state import ServerConfig


def _parse_args(argv: list[str] | None) -> ServerConfig:
    parser = argparse.ArgumentParser(prog="python -m fhir_bridge.sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--fhir-version", choices=("R4", "R4B"), default="R4")
    parser.add_argument("--static-token", default="dev-token")
    parser.add_argument("--supports-events", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--max-delivery-failures", type=int, default=3)
    parser.add_argument(
        "--supports-subscriptions", action=argparse.BooleanOptionalAction, default=True
    )
    parser.add_argument("--builtin-topics", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args(argv)
    return ServerConfig(
        host=args.host,
        port=args.port,
        fhir_version=args.fhir_version,
        static_token=args.static_token,
        supports_events=args.supports_events,
        max_delivery_failures=args.max_delivery_failures,
        supports_subscriptions=args.supports_subscriptions,
        builtin_topics=args.builtin_topics,
    )


def main(argv: list[str] | None = None) -> None:
    """Serve until terminated; access logs are off because URLs may carry identifiers."""
    config = _parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    uvicorn.run(
        create_app(config),
        host=config.host,
        port=config.port,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
