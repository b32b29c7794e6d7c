"""appointment.created for a waitlist booking, published to Pub/Sub appointment-events as the booking
platform would, so the reminder fan-out schedules its confirmation and reminders (publishing twice is
harmless: the fan-out's ledger keys dedupe)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol

from shared.platform import resources

PUBLISH_TIMEOUT_SECONDS = 30.0


class AppointmentEvents(Protocol):
    def created(self, appointment_id: str) -> None: ...


class PubSubAppointmentEvents:
    """Publishes to the appointment-events topic with the official client, made on the first publish
    (shared.platform.clients.publisher: google-cloud-pubsub is imported only by a function that publishes)."""

    def __init__(self, publisher: Callable[[], Any], project: str) -> None:
        self.publisher, self.project = publisher, project

    def created(self, appointment_id: str) -> None:
        client = self.publisher()
        topic = client.topic_path(self.project, resources.TOPIC_APPOINTMENT_EVENTS)
        data = json.dumps({"event": "appointment.created", "appointment_id": appointment_id}).encode()
        client.publish(topic, data, source="waitlist").result(timeout=PUBLISH_TIMEOUT_SECONDS)
