"""Alembic migrations of the operational database (``alembic upgrade head``; the pipeline
applies them itself on start, see :func:`election_pipeline.db.session.upgrade_database`)."""
