"""The report stage: charts drawn from the figures, a self-contained HTML page per election,
and the two report assets materialised on a real Dagster instance."""

import base64
import io
import re
from collections.abc import Mapping
from datetime import datetime

import dagster as dg
import pandas as pd
import pytest
from matplotlib import image as mpimg
from sqlalchemy.orm import Session

from election_pipeline.analytics import period_metrics as pm
from election_pipeline.db.models import Election
from election_pipeline.defs.report_assets import election_metrics, election_report
from election_pipeline.defs.resources import DetectionResource, OperationalDatabaseResource, ReportsResource
from election_pipeline.stages.election_metrics import publish_election_metrics
from election_pipeline.stages.report import CHARTS, cumulative_participation, peer_band, safe_name, write_reports
from election_pipeline_tests.builders import THRESHOLDS

from .conftest import C1, C2, E1, H

CHART_NAMES = ["participation", "votes_vs_bulletins", "alert_timeline", "region_hour_heatmap", "local_hour_pattern"]


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = mpimg.imread(io.BytesIO(data), format="png")
    return pixels.shape[1], pixels.shape[0]


def test_peer_band_is_computed_from_cumulative_participation(metrics_db):
    scope = pm.election_scope(metrics_db.engine, E1)
    rows = pm.constituency_hours(metrics_db.engine, scope)
    registered = pd.Series(scope.registered_by_constituency)
    rate = cumulative_participation(rows, registered[registered > 0])
    # At the end of the 06:00 hour: C1 14/100, C2 4/50 (silent that hour), C3 and C4 nothing yet.
    at7 = rate.loc[pd.Timestamp(H(6, 7))]
    assert dict(at7) == pytest.approx({C1: 14.0, C2: 8.0, "CtrEastThree": 0.0, "CtrWestFour": 0.0})
    low, mid, high = peer_band(rate)
    assert (low[H(6, 7)], mid[H(6, 7)], high[H(6, 7)]) == pytest.approx((0.0, 4.0, 12.2))
    assert rate.index[-1] == pd.Timestamp(H(6, 22)) and rate.loc[H(6, 22), C1] == pytest.approx(20.0)


def test_write_reports_writes_charts_and_a_self_contained_page(metrics_db, tmp_path):
    publish_election_metrics(metrics_db.engine, THRESHOLDS.offline_after_hours)
    out = tmp_path / "reports"
    [report] = write_reports(metrics_db.engine, out, THRESHOLDS.offline_after_hours)

    folder = out / safe_name(E1)
    assert report.html_path == folder / "report.html"
    assert [c.name for c in report.charts] == CHART_NAMES
    for chart in report.charts:
        on_disk = (folder / f"{chart.name}.png").read_bytes()
        assert on_disk == chart.png
        width, height = _png_size(on_disk)
        assert width > 500 and height > 200

    page = report.html_path.read_text(encoding="utf-8")
    images = re.findall(r'<img alt="[^"]*" src="data:image/png;base64,([A-Za-z0-9+/=]+)">', page)
    assert [base64.b64decode(i) for i in images] == [c.png for c in report.charts]
    assert not re.search(r'(src|href)="(https?:|//|file:)', page)  # nothing to fetch: it opens offline
    for text in (
        "Test election",
        "North One",
        "12.50 %",
        "More voters than bulletins in North One",
        "1 / 4",
        "whole election",
    ):
        assert text in page
    # Most anomalous constituency first in the table.
    assert page.index("North One") < page.index("South Two") < page.index("East Three")
    index = (out / "index.html").read_text(encoding="utf-8")
    assert f'href="{safe_name(E1)}/report.html"' in index and "Test election" in index


def test_an_election_without_data_still_gets_a_report(metrics_db, tmp_path):
    with Session(metrics_db.engine) as db:
        db.add(
            Election(
                id="empty/../election",
                name="Not started",
                start_date=datetime(2024, 10, 1),
                end_date=datetime(2024, 10, 2),
                timezone="Asia/Kolkata",
            )
        )
        db.commit()
    reports = write_reports(metrics_db.engine, tmp_path / "reports", THRESHOLDS.offline_after_hours)
    empty = next(r for r in reports if r.election_id == "empty/../election")
    assert empty.folder.parent == tmp_path / "reports"  # the id cannot escape the reports folder
    assert len(empty.charts) == len(CHARTS) and all(_png_size(c.png)[0] > 300 for c in empty.charts)
    assert empty.figures["votes_cast"] == 0 and "Not started" in empty.html_path.read_text(encoding="utf-8")


def test_report_assets_materialise_with_tables_and_embedded_charts(metrics_db, tmp_path):
    reports_dir = tmp_path / "reports"
    resources = {
        "ops_db": OperationalDatabaseResource(url=metrics_db.url),
        "reports": ReportsResource(reports_dir=str(reports_dir)),
        "detection": DetectionResource(),
    }
    with dg.instance_for_test() as instance:
        result = dg.materialize([election_metrics, election_report], resources=resources, instance=instance)
        assert result.success
        metrics_md = result.asset_materializations_for_node("election_metrics")[0].metadata
        report_md = result.asset_materializations_for_node("election_report")[0].metadata
    assert metrics_md["elections"].value == 1 and metrics_md["inserted"].value == 1
    assert metrics_md["dagster/row_count"].value == 1
    elections_table, most_anomalous = metrics_md["elections_table"], metrics_md["most_anomalous"]
    summary, charts_md = metrics_md["dashboard_summary"].value, report_md["charts"]
    assert isinstance(elections_table, dg.TableMetadataValue) and isinstance(most_anomalous, dg.TableMetadataValue)
    assert isinstance(summary, Mapping) and isinstance(charts_md, dg.MarkdownMetadataValue)
    [row] = [r.data for r in elections_table.records]
    assert list(row.values()) == ["Test election", 12.5, 25, 200, 23, -2, "1 / 4", 2, 1, "1 / 1 / 1"]
    types = {c.name: c.type for c in elections_table.schema.columns}
    assert (types["participation %"], types["voters"], types["election"]) == ("float", "int", "string")
    assert "North One" in [r.data["constituency"] for r in most_anomalous.records]
    assert summary["unknown_constituencies"] == 1
    charts = charts_md.value
    assert charts.count("](data:image/png;base64,") == 5
    assert "Alert timeline" in charts and str(reports_dir / safe_name(E1) / "report.html") in charts
    assert report_md["reports_dir"].value == str(reports_dir)
    assert (reports_dir / safe_name(E1) / "participation.png").exists()
