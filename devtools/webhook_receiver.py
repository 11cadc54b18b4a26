"""A development receiver for outbound webhooks: prints each delivery and whether its signature holds.

    make webhook-receiver SECRET=whsec_...     # listens on 127.0.0.1:FC_WEBHOOK_RECEIVER_PORT (8099)

Register `http://127.0.0.1:8099/hooks` as an endpoint (development mode allows loopback targets) and
give this the secret the registration answered. It answers 200 to a delivery whose signature
verifies (connectors/webhooks.py `verify`, the check a tenant's receiver makes) and 400 otherwise;
`--fail N` answers 503 to the first N deliveries, to watch the retries in the delivery log.
"""

from __future__ import annotations

import argparse
import json
import time

from aiohttp import web

from connectors.webhooks import DELIVERY_ID_HEADER, SIGNATURE_HEADER, verify


def application(secret: str, failures: int) -> web.Application:
    seen = {"requests": 0}

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        seen["requests"] += 1
        valid = verify(secret, request.headers.get(SIGNATURE_HEADER, ""), body, int(time.time()))
        event = json.loads(body) if valid else {}
        answer = 503 if valid and seen["requests"] <= failures else 200 if valid else 400
        print(f"[webhook-receiver] {answer} delivery {request.headers.get(DELIVERY_ID_HEADER)}: "
              f"{event.get('type', '?')} {event.get('event_id', '')} "
              f"{'signature ok' if valid else 'BAD SIGNATURE'}", flush=True)
        return web.Response(status=answer)

    app = web.Application()
    app.router.add_post("/{tail:.*}", receive)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--secret", required=True, help="the endpoint's secret, as POST /v1/webhooks answered it")
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--fail", type=int, default=0, help="answer 503 to the first N deliveries")
    args = parser.parse_args()
    print(f"[webhook-receiver] listening on http://127.0.0.1:{args.port}/", flush=True)
    web.run_app(application(args.secret, args.fail), host="127.0.0.1", port=args.port, print=None)


if __name__ == "__main__":
    main()
