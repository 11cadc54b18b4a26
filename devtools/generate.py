"""Artifacts generated from the pydantic models, committed so that readers and tools need no Python.

    python -m devtools.generate           # (re)write them
    python -m devtools.generate --check   # exit 1 and name the files that differ from the models

- `schemas/<topic>.json`: the JSON schema of every message on a topic (the envelope with one of the
  topic's payloads), for data scientists reading topics with confluent-kafka.
- `druid_specs/<datasource>.json`: the Kafka supervisor spec of every analytical topic (see
  `streams/analytics.py`).
- `schemas/openapi.json`: the gateway's OpenAPI 3.1 document (`gateway/openapi.py`, from the route
  table and the request and response models), the one the gateway serves at `/openapi.json`.

`tests/unit/test_generated_artifacts.py` fails when a committed file drifts from the models.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import create_model

from gateway import openapi
from streams import analytics, topics
from streams.models import Envelope, Payload
from streams.settings import PROJECT_ROOT


def envelope_schema(payload: type[Payload]) -> dict[str, Any]:
    name = payload.__name__
    model = create_model(
        name, __base__=Envelope, type=(Literal[name], ...), payload=(payload, ...),  # type: ignore[call-overload]
    )
    return model.model_json_schema()


def topic_schema(spec: topics.TopicSpec) -> dict[str, Any]:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": spec.name,
        "description": f"Key: {spec.key}. Written by {spec.writers}; read by {spec.readers}.",
        "oneOf": [envelope_schema(payload) for payload in spec.payloads],
    }


def artifacts(root: Path = PROJECT_ROOT) -> dict[Path, str]:
    files = {root / "schemas" / f"{spec.name}.json": topic_schema(spec) for spec in topics.ALL}
    files.update({
        root / "druid_specs" / f"{spec.datasource}.json": analytics.supervisor_spec(spec)
        for spec in analytics.analysed_topics()
    })
    files[root / "schemas" / "openapi.json"] = openapi.document()
    return {path: json.dumps(content, indent=2) + "\n" for path, content in files.items()}


def stale(root: Path = PROJECT_ROOT) -> list[Path]:
    """Generated files that are missing or differ from what the models give."""
    return [path for path, text in artifacts(root).items() if not path.exists() or path.read_text() != text]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a file is stale")
    args = parser.parse_args()
    if args.check:
        outdated = stale()
        for path in outdated:
            print(f"[generate] {path.relative_to(PROJECT_ROOT)} differs from the models")
        raise SystemExit(1 if outdated else 0)
    for path, text in artifacts().items():
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
        print(f"[generate] wrote {path.relative_to(PROJECT_ROOT)}")


if __name__ == "__main__":
    main()
