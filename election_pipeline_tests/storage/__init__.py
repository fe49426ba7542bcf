"""Tests of the operational storage: migrations, bulk writes, PostgreSQL, concurrency, faults, retention."""
