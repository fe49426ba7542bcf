"""The sample-election generator: a small, deterministic election in the official export format."""

from .generator import (
    CONSTITUENCIES_HEADER,
    ELECTION_COUNTRY,
    ELECTION_NAME,
    ELECTION_TIMEZONE,
    ELECTION_TYPE,
    ELECTIONS_HEADER,
    ConstituencyTotals,
    HourlyFigures,
    MalformedLine,
    SampleConstituency,
    SampleSummary,
    generate_sample,
    has_input_files,
)

__all__ = [
    "CONSTITUENCIES_HEADER",
    "ELECTIONS_HEADER",
    "ELECTION_COUNTRY",
    "ELECTION_NAME",
    "ELECTION_TIMEZONE",
    "ELECTION_TYPE",
    "ConstituencyTotals",
    "HourlyFigures",
    "MalformedLine",
    "SampleConstituency",
    "SampleSummary",
    "generate_sample",
    "has_input_files",
]
