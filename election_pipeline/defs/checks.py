"""Asset checks: the data-quality gates. Blocking checks stop the assets downstream of
them in the same run, so no figure built on inconsistent data reaches the alerts."""


import dagster as dg

from election_pipeline.stages import quality

from .assets import DUCKDB_POOL, constituency_metrics, hourly_stats, raw_transactions
from .resources import OperationalDatabaseResource, WarehouseResource


def _result(r: quality.QualityResult, severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=r.passed, severity=severity, description=r.summary, metadata={"summary": r.summary, **r.figures}
    )


@dg.asset_check(asset=raw_transactions, blocking=True, pool=DUCKDB_POOL)
def no_transaction_counted_twice(warehouse: WarehouseResource, ops_db: OperationalDatabaseResource) -> dg.AssetCheckResult:
    """Each transaction id is stored once in DuckDB and once in the operational database, and
    both hold the same standing (not rolled back) transactions for every constituency."""
    with warehouse.connect() as duck:
        return _result(quality.no_transaction_counted_twice(duck, ops_db.engine()))


@dg.asset_check(asset=raw_transactions, blocking=False)
def timestamps_within_voting_window(ops_db: OperationalDatabaseResource) -> dg.AssetCheckResult:
    """Bulletins and votes dated outside their election's voting window. They are kept and
    counted in their hour; this check reports them (warning) for investigation."""
    return _result(quality.timestamps_within_voting_window(ops_db.engine()), dg.AssetCheckSeverity.WARN)


@dg.asset_check(asset=hourly_stats, blocking=True, pool=DUCKDB_POOL)
def hourly_totals_reconcile(warehouse: WarehouseResource, ops_db: OperationalDatabaseResource) -> dg.AssetCheckResult:
    """The hourly table adds up exactly to the raw counts: standing transactions, bulletins
    issued and distinct voters."""
    with warehouse.connect() as duck:
        return _result(quality.hourly_totals_reconcile(duck, ops_db.engine()))


@dg.asset_check(asset=hourly_stats, blocking=True, pool=DUCKDB_POOL)
def every_transaction_in_a_known_hour(warehouse: WarehouseResource, ops_db: OperationalDatabaseResource) -> dg.AssetCheckResult:
    """Every stored transaction was parsed with a timestamp and its constituency-hour is
    published in ``hourly_stats`` (and no published hour is left without transactions)."""
    with warehouse.connect() as duck:
        return _result(quality.every_transaction_in_a_known_hour(duck, ops_db.engine()))


@dg.asset_check(asset=constituency_metrics, blocking=False)
def participation_at_most_100_percent(ops_db: OperationalDatabaseResource) -> dg.AssetCheckResult:
    """No constituency has more distinct voters than registered voters. A failure is an
    observation about the election, not a pipeline fault: the alerts still run and raise a
    critical ``bulletins_exceed_registered`` alert with the evidence."""
    return _result(quality.participation_at_most_100(ops_db.engine()))


ALL_CHECKS = [
    no_transaction_counted_twice,
    timestamps_within_voting_window,
    hourly_totals_reconcile,
    every_transaction_in_a_known_hour,
    participation_at_most_100_percent,
]
