"""The Prometheus client against local HTTP servers that misbehave in the ways real ones do."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from apps.integrations.prometheus import PrometheusClient, PrometheusError

# The fake Prometheus listens on 127.0.0.1, which the outbound guard refuses by default.
pytestmark = pytest.mark.usefixtures("allow_loopback_outbound")


def _server(handler: Callable[[BaseHTTPRequestHandler], None]) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            handler(self)

        do_POST = do_GET

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _reply(status: int, body: bytes):
    def handle(req: BaseHTTPRequestHandler) -> None:
        req.send_response(status)
        req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", str(len(body)))
        req.end_headers()
        req.wfile.write(body)

    return handle


@pytest.fixture
def serve():
    servers = []

    def start(handler):
        gen = _server(handler)
        servers.append(gen)
        return next(gen)

    yield start
    for gen in servers:
        next(gen, None)


def test_query__valid_vector__parsed_with_timestamps(serve):
    body = {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [{"metric": {"deployment": "a"}, "value": [1700000000.5, "3.25"]}],
        },
    }
    url = serve(_reply(200, json.dumps(body).encode()))
    [sample] = PrometheusClient(url).query("up")
    assert sample.labels == {"deployment": "a"}
    assert sample.value == 3.25
    assert sample.timestamp == 1700000000.5


def test_query__garbage_body__retryable_error(serve):
    url = serve(_reply(200, b"<html>proxy error</html>"))
    with pytest.raises(PrometheusError) as err:
        PrometheusClient(url).query("up")
    assert err.value.retryable
    assert "not its API" in str(err.value)


def test_query__bad_query_400__not_retryable(serve):
    url = serve(_reply(400, b'{"status":"error","errorType":"bad_data","error":"parse error"}'))
    with pytest.raises(PrometheusError) as err:
        PrometheusClient(url).query("sum(")
    assert not err.value.retryable


def test_query__server_error_503__retryable(serve):
    url = serve(_reply(503, b"overloaded"))
    with pytest.raises(PrometheusError) as err:
        PrometheusClient(url).query("up")
    assert err.value.retryable


def test_query__slow_server__times_out_as_retryable(serve):
    def slow(req):
        time.sleep(1.5)
        _reply(200, b"{}")(req)

    url = serve(slow)
    with pytest.raises(PrometheusError) as err:
        PrometheusClient(url, timeout_s=0.3).query("up")
    assert err.value.retryable
    assert "did not answer" in str(err.value)


def test_query__nothing_listening__cannot_reach():
    with pytest.raises(PrometheusError) as err:
        PrometheusClient("http://127.0.0.1:9", timeout_s=1).query("up")
    assert err.value.retryable
    assert "cannot reach" in str(err.value)
