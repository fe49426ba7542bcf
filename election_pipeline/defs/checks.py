"""Asset checks: the data-quality gates (the two on ``hourly_stats`` are evaluated inside
that asset's step: see ``assets.HOURLY_CHECKS``). Blocking checks stop the assets downstream of
them in the same run, so no figure built on inconsistent data reaches the alerts."""

import dagster as dg

from election_pipeline.stages import quality

from .assets import DUCKDB_POOL, constituency_metrics, operational_transactions, raw_transactions
from .metadata import check_result
from .resources import DropFolderResource, OperationalDatabaseResource, QualityChecksResource, WarehouseResource


@dg.asset_check(asset=operational_transactions, blocking=True, pool=DUCKDB_POOL)
def no_transaction_counted_twice(
    warehouse: WarehouseResource, ops_db: OperationalDatabaseResource, quality_checks: QualityChecksResource
) -> dg.AssetCheckResult:
    """Each transaction id is stored once in DuckDB and once in the operational database, and
    both hold the same standing (not rolled back, not in conflict) transactions for every
    constituency, once ``operational_transactions`` has published them."""
    with warehouse.connect() as duck:
        return check_result(
            quality.no_transaction_counted_twice(
                duck,
                ops_db.engine(),
                full_every_minutes=quality_checks.full_check_every_minutes,
                owned=warehouse.scope(),
            )
        )


@dg.asset_check(asset=operational_transactions, blocking=False)
def timestamps_within_voting_window(
    ops_db: OperationalDatabaseResource, drop_folder: DropFolderResource
) -> dg.AssetCheckResult:
    """Bulletins and votes dated outside their election's voting window. They are kept and
    counted in their hour; this check reports them (warning) for investigation."""
    return check_result(
        quality.timestamps_within_voting_window(ops_db.engine(), drop_folder.scope()),
        severity=dg.AssetCheckSeverity.WARN,
    )


@dg.asset_check(asset=constituency_metrics, blocking=False)
def participation_at_most_100_percent(
    ops_db: OperationalDatabaseResource, drop_folder: DropFolderResource
) -> dg.AssetCheckResult:
    """No constituency has more distinct voters than registered voters. A failure is an
    observation about the election, not a pipeline fault: the alerts still run and raise a
    critical ``bulletins_exceed_registered`` alert with the evidence."""
    return check_result(quality.participation_at_most_100(ops_db.engine(), drop_folder.scope()))


@dg.asset_check(asset=raw_transactions, blocking=False, pool=DUCKDB_POOL)
def block_heights_contiguous(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    """Completeness of the block dumps read: every block height between the lowest and the
    highest is present, and no height was read with two different contents. A missing block
    holds transactions that were never counted; the figures are computed from what was read,
    and this check names the missing heights (docs/input-format.md#block-dump)."""
    with warehouse.connect() as duck:
        return check_result(quality.block_heights_contiguous(duck))


ALL_CHECKS = [
    block_heights_contiguous,
    no_transaction_counted_twice,
    timestamps_within_voting_window,
    participation_at_most_100_percent,
]
