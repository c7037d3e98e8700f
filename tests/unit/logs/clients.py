"""Real log clients, with their HTTP requests captured at the transport instead of sent."""

from __future__ import annotations

import requests
from requests.adapters import BaseAdapter


class RecordingAdapter(BaseAdapter):
    """Answers every request with `status` and keeps the prepared requests (body, headers)."""

    def __init__(self, status: int = 204) -> None:
        super().__init__()
        self.status = status
        self.requests: list[requests.PreparedRequest] = []

    def send(self, request: requests.PreparedRequest, *args: object, **kwargs: object):  # type: ignore[override]
        self.requests.append(request)
        response = requests.Response()
        response.status_code = self.status
        response.request = request
        response.url = request.url or ""
        response._content = b""
        return response

    def close(self) -> None:
        pass


def recording_session(status: int = 204) -> tuple[requests.Session, RecordingAdapter]:
    session = requests.Session()
    adapter = RecordingAdapter(status)
    session.mount("http://", adapter)
    return session, adapter
