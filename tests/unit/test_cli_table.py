"""fleetctl's table layout: Go's tabwriter with tab padding (minwidth 0, tabwidth 8,
padding 1), as fleetctl used, and the unit-argument naming rules (pure)."""

from __future__ import annotations

import pytest
import typer

from fleetd.cli.table import render, select
from fleetd.cli.unitargs import unit_name


def test_columns_are_padded_with_tabs_to_multiples_of_eight() -> None:
    out = render(
        ["UNIT", "MACHINE", "ACTIVE", "SUB"],
        [["web.service", "1a2b3c4d.../10.0.0.1", "active", "running"]],
    )
    assert out == (
        "UNIT\t\tMACHINE\t\t\tACTIVE\tSUB\nweb.service\t1a2b3c4d.../10.0.0.1\tactive\trunning\n"
    )


def test_cell_of_exactly_eight_gets_one_tab() -> None:
    assert render(None, [["abcdefgh", "x"], ["a", "y"]]) == "abcdefgh\tx\na\t\ty\n"


def test_empty_table() -> None:
    assert render(["A", "B"], []) == "A\tB\n"
    assert render(None, []) == ""


def test_select_fields() -> None:
    available = {"unit": "", "hash": "", "dstate": ""}
    assert select(available, None, ["unit"]) == ["unit"]
    assert select(available, "HASH, unit", ["unit"]) == ["hash", "unit"]
    with pytest.raises(typer.BadParameter, match="nope"):
        select(available, "unit,nope", ["unit"])


@pytest.mark.parametrize(
    ("arg", "name"),
    [
        ("web", "web.service"),
        ("web.service", "web.service"),
        ("/srv/units/db.socket", "db.socket"),
        ("./app@1", "app@1.service"),
        ("x.foo", "x.foo.service"),
    ],
)
def test_unit_names_from_arguments(arg: str, name: str) -> None:
    assert unit_name(arg) == name
