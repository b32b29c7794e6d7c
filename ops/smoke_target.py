"""Where `python -m ops smoke` reaches the target: Pub/Sub topics, and the public webhooks' URLs.

A real project: each function's URL is what the Cloud Functions API says (`serviceConfig.uri`, the URL
deploy.sh reads with `gcloud functions describe`), asked with application-default credentials. The local
stack (its emulator variables set): the ports of local/config.py, checked against the stack the
environment names. Publishing is the official Pub/Sub client either way (PUBSUB_EMULATOR_HOST locally).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from ops.smoke import encode
from shared.platform import clients, emulator
from shared.platform.errors import ConfigError

PUBLISH_TIMEOUT_SECONDS = 30.0
HTTP_TIMEOUT_SECONDS = 15.0
FUNCTIONS_API = "https://cloudfunctions.googleapis.com/v2/projects/{project}/locations/{region}/functions/{name}"


def publisher(project: str) -> Callable[[str, dict[str, Any]], None]:
    def publish(topic: str, data: dict[str, Any]) -> None:
        client = clients.publisher()
        client.publish(client.topic_path(project, topic), encode(data)).result(timeout=PUBLISH_TIMEOUT_SECONDS)

    return publish


def function_urls(project: str, region: str) -> Callable[[str], str]:
    """name → the function's URL, for the local stack or the deployed project."""
    if emulator.on_emulator():
        from local import config

        stack = config.load()
        if stack.sandbox_url != os.environ.get("PROVIDER_SANDBOX_URL", "").rstrip("/"):
            raise ConfigError(
                "the environment names another local stack than local/config.py: set MEDSPA_PORT_BASE (and "
                "MEDSPA_STATE_DIR) to the ones the stack was started with"
            )
        return stack.url

    def deployed(name: str) -> str:
        import google.auth
        from google.auth.transport.requests import AuthorizedSession

        credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
        answer = AuthorizedSession(credentials).get(
            FUNCTIONS_API.format(project=project, region=region, name=name), timeout=HTTP_TIMEOUT_SECONDS
        )
        answer.raise_for_status()
        return str(answer.json()["serviceConfig"]["uri"])

    return deployed


def asker(url_of: Callable[[str], str]) -> Callable[[str, str], int]:
    """(function name, method) → the status an unsigned, empty request gets."""

    def ask(name: str, method: str) -> int:
        import requests

        answer = requests.request(method, url_of(name), timeout=HTTP_TIMEOUT_SECONDS, allow_redirects=False)
        return int(answer.status_code)

    return ask
