"""The fleet simulator's ``/scale/<namespace>/<name>`` API as the tests fake it: the routing
and answers every fake shares, over the test's own replica counts (``spec``)."""

from __future__ import annotations

import json
from http import HTTPStatus
from urllib.parse import unquote, urlsplit

from tests.servers import QuietHandler


class ScaleApiHandler(QuietHandler):
    """Subclasses say where ``spec`` (target -> replicas) lives and answer GET and PUT."""

    def spec(self) -> dict[str, int]:
        raise NotImplementedError

    def target(self) -> str | None:
        """``namespace/name`` of a known target, else None after answering 404."""
        parts = [unquote(p) for p in urlsplit(self.path).path.split("/") if p]
        target = "/".join(parts[1:])
        if len(parts) != 3 or parts[0] != "scale" or target not in self.spec():
            self.send_json(HTTPStatus.NOT_FOUND, {"error": f"no such target: {self.path}"})
            return None
        return target

    def status(self, target: str) -> dict[str, int]:
        replicas = self.spec()[target]
        return {"spec_replicas": replicas, "ready_replicas": replicas, "starting_replicas": 0}

    def write(self) -> tuple[str, int, str] | None:
        """A PUT's target, requested replica count and idempotency key; None after a 404."""
        target = self.target()
        if target is None:
            return None
        length = int(self.headers.get("Content-Length") or 0)
        replicas = int(json.loads(self.rfile.read(length))["replicas"])
        return target, replicas, self.headers.get("Idempotency-Key", "")
