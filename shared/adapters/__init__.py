"""One adapter per trigger kind, so each entry point in functions/*/main.py is a few lines: a Pub/Sub job
(pubsub_job.py), a signed webhook (signed_webhook.py), a signed link a patient follows (signed_link.py) and a
Cloud Task (shared/tasks/router.py, which the task endpoints call). docs/architecture.md, "Entry points", says
what each answers and why."""
