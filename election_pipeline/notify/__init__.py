"""Notifications of alert state changes: a webhook message (Slack-compatible JSON) per
configured webhook and one email, delivered from the outbox the alerts stage writes
(``alert_notifications``), exactly once per change and target (README, "Notifications").

* :mod:`.message`: what is sent (the webhook body, the email);
* :mod:`.channels`: how (``urllib.request``, ``smtplib``), with errors that never name a secret;
* :mod:`.deliver`: which changes go where, retries with backoff, the delivery records.

No Dagster here: the asset ``alert_notifications`` (``defs/notify_assets.py``) calls
:func:`.deliver.deliver_notifications`.
"""
