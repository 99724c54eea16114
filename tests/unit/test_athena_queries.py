"""Running one Athena query (driftcheck/athena_window.py: AthenaQueries) against Athena's own response
shapes, played by botocore's Stubber on a real client: results over several pages (the column names only
in the first page's first row), typed by the result's column types, NULL as an empty cell; a FAILED query
raises naming its reason. moto's Athena (tests/functional/test_drift_athena.py) returns one page only."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from driftcheck.athena_window import AthenaQueries, AthenaQueryError, typed

COLUMNS = [{"Name": "value", "Type": "varchar"}, {"Name": "n", "Type": "bigint"}]


def page(rows: list[list[str | None]], token: str | None = None) -> dict:
    out: dict = {
        "ResultSet": {
            "Rows": [{"Data": [{} if v is None else {"VarCharValue": v} for v in row]} for row in rows],
            "ResultSetMetadata": {"ColumnInfo": COLUMNS},
        }
    }
    if token:
        out["NextToken"] = token
    return out


def execution(state: str, reason: str = "") -> dict:
    status = {"State": state, **({"StateChangeReason": reason} if reason else {})}
    return {"QueryExecution": {"QueryExecutionId": "q1", "Status": status, "Statistics": {"DataScannedInBytes": 2048}}}


@pytest.fixture
def client(aws_credentials):
    return boto3.client("athena", region_name="us-east-1")


def test_results_over_pages_are_typed_and_the_header_row_is_dropped_once(client) -> None:
    stub = Stubber(client)
    stub.add_response("start_query_execution", {"QueryExecutionId": "q1"}, {"QueryString": "SELECT 1", "WorkGroup": "wg"})
    stub.add_response("get_query_execution", execution("RUNNING"), {"QueryExecutionId": "q1"})
    stub.add_response("get_query_execution", execution("SUCCEEDED"), {"QueryExecutionId": "q1"})
    stub.add_response("get_query_results", page([["value", "n"], ["Dream", "41"], [None, "3"]], "t2"), {"QueryExecutionId": "q1"})
    # a second page whose first row is data that happens to look like anything: kept
    stub.add_response("get_query_results", page([["n", "7"]]), {"QueryExecutionId": "q1", "NextToken": "t2"})
    waits: list[float] = []
    with stub:
        rows = AthenaQueries(client, "wg", sleep=waits.append).run("categories", "SELECT 1")
    assert rows == [{"value": "Dream", "n": 41}, {"value": None, "n": 3}, {"value": "n", "n": 7}]
    assert waits == [0.1]
    stub.assert_no_pending_responses()


def test_a_failed_query_raises_naming_the_query_and_athenas_reason(client) -> None:
    stub = Stubber(client)
    stub.add_response("start_query_execution", {"QueryExecutionId": "q1"}, {"QueryString": "SELECT 1", "WorkGroup": "wg"})
    failed = execution("FAILED", "Query exhausted resources at this scale factor")
    stub.add_response("get_query_execution", failed, {"QueryExecutionId": "q1"})
    with stub, pytest.raises(AthenaQueryError) as err:
        AthenaQueries(client, "wg", sleep=lambda s: None).run("nulls", "SELECT 1")
    assert (err.value.query, err.value.reason) == ("nulls", "FAILED") and "exhausted" in err.value.detail


def test_a_refused_call_is_a_failed_query_named_by_its_error_code(client) -> None:
    stub = Stubber(client)
    stub.add_client_error("start_query_execution", "AccessDeniedException", "not allowed on workgroup wg")
    with stub, pytest.raises(AthenaQueryError) as err:
        AthenaQueries(client, "wg").run("row_count", "SELECT 1")
    assert err.value.reason == "AccessDeniedException"


@pytest.mark.parametrize(
    ("text", "athena_type", "value"),
    [
        ("12", "bigint", 12),
        ("0.25", "double", 0.25),
        ("1.5E-7", "double", 1.5e-7),
        ("true", "boolean", True),
        ("x", "varchar", "x"),
        ("3", "decimal(10,2)", 3.0),
        (None, "bigint", None),
    ],
)
def test_cells_take_their_columns_type(text, athena_type, value) -> None:
    assert typed(text, athena_type) == value
