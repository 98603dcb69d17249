"""A small synchronous client for the prompt server.

    from softprompt.serving.client import SoftPromptClient

    with SoftPromptClient("http://127.0.0.1:8000", token="...") as client:
        out = client.classify("sst2", ["sst2 sentence : a great movie"])
        print(out["results"][0]["label"])

Every method returns the server's JSON as plain dicts; an error status raises ClientError
(with .status and .detail).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import httpx

DEFAULT_URL = "http://127.0.0.1:8000"


class ClientError(Exception):
    """The server answered with an error status (or could not be reached: status 0)."""

    def __init__(self, status: int, detail: Any):
        self.status = status
        self.detail = detail
        super().__init__(f"HTTP {status}: {detail}" if status else str(detail))


class SoftPromptClient:
    """Client for `softprompt serve`.

    url:         the server's base URL (default $SOFTPROMPT_URL or http://127.0.0.1:8000).
    token:       API token, sent as a Bearer token on inference and listing calls
                 (default $SOFTPROMPT_API_TOKEN).
    admin_token: admin token for uploads and deletes (default $SOFTPROMPT_ADMIN_TOKEN).
    http_client: an httpx.Client to use instead of a new one (e.g. FastAPI's TestClient).
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        admin_token: str | None = None,
        timeout: float = 120.0,
        http_client: httpx.Client | None = None,
    ):
        self.url = (url or os.environ.get("SOFTPROMPT_URL") or DEFAULT_URL).rstrip("/")
        self.token = token if token is not None else os.environ.get("SOFTPROMPT_API_TOKEN")
        self.admin_token = admin_token if admin_token is not None else os.environ.get("SOFTPROMPT_ADMIN_TOKEN")
        self._own = http_client is None
        self._http = http_client or httpx.Client(base_url=self.url, timeout=timeout)

    # ----------------------------------------------------------------- plumbing
    def close(self) -> None:
        if self._own:
            self._http.close()

    def __enter__(self) -> "SoftPromptClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _headers(self, admin: bool) -> dict[str, str]:
        token = self.admin_token if admin else (self.token or self.admin_token)
        return {"Authorization": f"Bearer {token}"} if token else {}

    def _request(self, method: str, path: str, *, admin: bool = False, **kwargs) -> httpx.Response:
        headers = {**self._headers(admin), **kwargs.pop("headers", {})}
        try:
            response = self._http.request(method, path, headers=headers, **kwargs)
        except httpx.HTTPError as err:
            raise ClientError(0, f"cannot reach the server at {self.url}: {err}") from None
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise ClientError(response.status_code, detail)
        return response

    # ----------------------------------------------------------------- inference
    def classify(self, prompt: str, inputs: str | Sequence[str], labels: Sequence[str] | None = None) -> dict:
        """POST /v1/classify; returns {"prompt", "labels", "results": [{"label", "scores", "probabilities"}]}."""
        body: dict[str, Any] = {"prompt": prompt, "inputs": [inputs] if isinstance(inputs, str) else list(inputs)}
        if labels is not None:
            body["labels"] = list(labels)
        return self._request("POST", "/v1/classify", json=body).json()

    def generate(self, prompt: str, inputs: str | Sequence[str], max_new_tokens: int = 32) -> dict:
        """POST /v1/generate; returns {"prompt", "results": [{"text"}]}."""
        body = {"prompt": prompt, "inputs": [inputs] if isinstance(inputs, str) else list(inputs),
                "max_new_tokens": max_new_tokens}
        return self._request("POST", "/v1/generate", json=body).json()

    def score(self, prompt: str, input: str, targets: Sequence[str]) -> dict:
        """POST /v1/score; returns {"prompt", "results": [{"target", "log_likelihood"}]}."""
        return self._request("POST", "/v1/score", json={"prompt": prompt, "input": input,
                                                        "targets": list(targets)}).json()

    # ----------------------------------------------------------------- prompts
    def prompts(self) -> dict:
        """GET /v1/prompts; returns {"model", "prompts": [...], "unavailable": {...}}."""
        return self._request("GET", "/v1/prompts").json()

    def prompt(self, name: str) -> dict:
        """GET /v1/prompts/{name}: one prompt's metadata."""
        return self._request("GET", f"/v1/prompts/{name}").json()

    def upload_prompt(self, name: str, file: str | Path | bytes) -> dict:
        """PUT /v1/prompts/{name} with a prompt file (path or bytes); needs the admin token."""
        data = file if isinstance(file, (bytes, bytearray)) else Path(file).read_bytes()
        return self._request("PUT", f"/v1/prompts/{name}", admin=True, content=bytes(data),
                             headers={"Content-Type": "application/octet-stream"}).json()

    def delete_prompt(self, name: str) -> None:
        """DELETE /v1/prompts/{name}; needs the admin token."""
        self._request("DELETE", f"/v1/prompts/{name}", admin=True)

    # ----------------------------------------------------------------- operations
    def health(self) -> dict:
        return self._request("GET", "/healthz").json()

    def metrics(self) -> str:
        return self._request("GET", "/metrics").text
