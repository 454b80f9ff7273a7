"""A Python client that keeps its session in the ``X-Session-Id`` header."""

from __future__ import annotations

import typing as t

import requests

HEADER = "X-Session-Id"


class ApiClient:
    """Send the session id on every request and keep the one the server
    sends back: a new id after login, an empty value after logout.
    """

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = requests.Session()
        # Empty: a header request with no session yet, so the server answers
        # in the header (and never with a cookie).
        self.http.headers[HEADER] = ""

    def request(self, method: str, path: str, **kwargs: t.Any) -> requests.Response:
        response = self.http.request(method, self.base_url + path, timeout=10, **kwargs)
        if HEADER in response.headers:
            self.http.headers[HEADER] = response.headers[HEADER]
        return response


def main(base_url: str = "http://127.0.0.1:5000") -> None:
    api = ApiClient(base_url)
    api.request("POST", "/api/login", json={"name": "ann"}).raise_for_status()
    print(api.request("GET", "/api/me").json())  # {'user': 'ann'}
    api.request("POST", "/api/logout").raise_for_status()
    print(api.request("GET", "/api/me").status_code)  # 401


if __name__ == "__main__":
    main()
