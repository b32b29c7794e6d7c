"""Task resources: hashed stable names, OIDC, schedule time; bounded creation reports every outcome."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone

from shared.platform.settings import Settings
from shared.tasks.queue import CloudTasksQueue, Target, TaskSpec, create_all, task_id

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
SETTINGS = Settings.from_env(
    {
        "GOOGLE_CLOUD_PROJECT": "p",
        "TASKS_LOCATION": "us-central1",
        "TASK_HANDLER_URL": "https://handler.example.com/",
        "TASKS_SERVICE_ACCOUNT": "tasks@p.iam.gserviceaccount.com",
    }
)


class PathOnlyClient:
    @staticmethod
    def queue_path(project, location, queue):
        return f"projects/{project}/locations/{location}/queues/{queue}"


def spec(key="reminder-abc", when=NOW + timedelta(hours=3)):
    return TaskSpec(
        queue="reminders-sms", business_key=key, payload={"type": "appointment_reminder", "v": 1}, schedule_time=when
    )


def test_task_name_is_a_stable_hash_of_the_business_key():
    assert task_id("k") == task_id("k") != task_id("k2")
    assert len(task_id("k")) == 64 and task_id("k").isalnum()


def test_built_task_targets_the_handler_with_oidc_and_schedule_time():
    task = CloudTasksQueue(PathOnlyClient(), SETTINGS).build(spec())
    assert task["name"] == f"projects/p/locations/us-central1/queues/reminders-sms/tasks/{task_id('reminder-abc')}"
    request = task["http_request"]
    assert request["url"] == "https://handler.example.com/"
    assert request["oidc_token"] == {
        "service_account_email": "tasks@p.iam.gserviceaccount.com",
        "audience": "https://handler.example.com/",
    }
    assert json.loads(request["body"]) == {"type": "appointment_reminder", "v": 1}
    assert task["schedule_time"] == NOW + timedelta(hours=3)


class RecordingQueue:
    """Creates by name; a name seen before is 'already present'; listed keys fail."""

    def __init__(self, failing=()):
        self.names, self.failing, self.lock = set(), set(failing), threading.Lock()
        self.in_flight = self.max_in_flight = 0

    def create(self, task_spec):
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if task_spec.business_key in self.failing:
                raise TimeoutError("deadline exceeded")
            with self.lock:
                if task_spec.business_key in self.names:
                    return False
                self.names.add(task_spec.business_key)
                return True
        finally:
            with self.lock:
                self.in_flight -= 1


def test_create_all_counts_created_present_and_failed_and_finishes_the_rest():
    queue = RecordingQueue(failing={"k3"})
    specs = [spec(f"k{i}") for i in range(10)] + [spec("k1")]
    report = create_all(queue, specs, concurrency=4)
    assert report.created == 9 and report.already_present == 1
    assert [(s.business_key, problem.split(":")[0]) for s, problem in report.failed] == [("k3", "TimeoutError")]
    assert queue.max_in_flight <= 4


def test_the_templated_request_is_exactly_what_the_client_builds_from_the_dict():
    from google.cloud import tasks_v2
    from proto.datetime_helpers import DatetimeWithNanoseconds  # type: ignore[import-untyped]  # proto-plus ships no types

    queue = CloudTasksQueue(PathOnlyClient(), SETTINGS)
    for when in (
        NOW + timedelta(hours=3, microseconds=123456),
        datetime(2026, 11, 25, 7, 0, tzinfo=timezone(timedelta(hours=-5))),
        DatetimeWithNanoseconds(2026, 11, 25, 12, tzinfo=timezone.utc, nanosecond=123456789),
        None,
    ):
        for key in ("reminder-abc", "reminder-def"):  # the template is reused, never changed
            expected = tasks_v2.CreateTaskRequest(
                parent=queue.queue_path("reminders-sms"), task=queue.build(spec(key, when))
            )
            assert queue.request(spec(key, when)) == expected


def test_tasks_for_another_target_carry_its_url_and_audience():
    target = Target(url="https://unit.example.com/", audience="https://unit.example.com/")
    request = CloudTasksQueue(PathOnlyClient(), SETTINGS, target=target).request(spec())
    assert request.task.http_request.url == "https://unit.example.com/"
    assert request.task.http_request.oidc_token.audience == "https://unit.example.com/"
    assert request.task.http_request.oidc_token.service_account_email == "tasks@p.iam.gserviceaccount.com"
