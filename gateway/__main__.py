"""Run the gateway: check its secrets (`load_for`: outside development mode it refuses weak ones),
wait for Kafka, create the registry's topics, serve on GATEWAY_PORT."""

from __future__ import annotations

import logging

from aiohttp import web

from connectors.kafka import prepare_cluster
from gateway.app import create_app
from streams import logs
from streams.settings import load, load_for


def main() -> None:
    settings = load()
    logs.configure(settings, "gateway")
    settings = load_for("gateway", settings)
    prepare_cluster(settings)
    logging.getLogger("gateway").info(
        "gateway on http://%s:%d, reading from workers %s and those in Kafka groups %s*", settings.gateway_host,
        settings.gateway_port, ", ".join(settings.worker_urls), settings.app_id,
    )
    web.run_app(create_app(settings), host=settings.gateway_host, port=settings.gateway_port, print=None,
                access_log_format='%a "%r" %s %Tfs')


if __name__ == "__main__":
    main()
