"""Anomaly detection: the alert rules and the anomaly score, as plain functions over
pandas frames (no Dagster, no database). :func:`~.rules.run_rules` runs every rule."""
