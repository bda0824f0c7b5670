"""The exception tree's one table of HTTP statuses, both ways."""

from __future__ import annotations

import pytest

from fleetd.errors import (
    HTTP_STATUSES,
    ApiError,
    Conflict,
    FleetError,
    Forbidden,
    InvalidInput,
    InvalidUnitName,
    LeaseExpired,
    NotFound,
    NotLeader,
    PeerUnreachable,
    RegistryUnavailable,
    SystemdError,
    SystemdUnavailable,
    Unauthenticated,
    Unavailable,
    error_for_status,
    http_status,
)


def test_no_entry_is_shadowed_by_an_earlier_base() -> None:
    kinds = [kind for kind, _ in HTTP_STATUSES]
    for i, later in enumerate(kinds):
        for earlier in kinds[:i]:
            assert not issubclass(later, earlier), f"{later.__name__} after {earlier.__name__}"


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (InvalidInput("x"), 400),
        (InvalidUnitName("x"), 400),
        (Unauthenticated("x"), 401),
        (Forbidden("x"), 403),
        (NotFound("x"), 404),
        (Conflict("x"), 409),
        (PeerUnreachable("x"), 502),
        (Unavailable("x"), 503),
        (RegistryUnavailable("x"), 503),
        (SystemdUnavailable("x"), 503),
        (NotLeader("x"), 503),
        (LeaseExpired("x"), 500),
        (SystemdError("x"), 500),
        (FleetError("x"), 500),
        (ApiError(405, "x"), 405),
    ],
)
def test_status_of_each_error(error: FleetError, status: int) -> None:
    assert http_status(error) == status


@pytest.mark.parametrize(("kind", "status"), HTTP_STATUSES)
def test_every_status_reads_back_as_an_error_answered_with_it(
    kind: type[FleetError], status: int
) -> None:
    error = error_for_status(status, "the message")
    assert http_status(error) == status and str(error) == "the message"
    if kind is not NotLeader:  # 503 reads back as the general Unavailable
        assert type(error) is kind


@pytest.mark.parametrize(
    ("status", "kind"), [(413, InvalidInput), (415, InvalidInput), (504, Unavailable)]
)
def test_statuses_without_a_type_read_back_as_the_nearest(
    status: int, kind: type[FleetError]
) -> None:
    assert type(error_for_status(status, "m")) is kind


@pytest.mark.parametrize("status", [405, 418, 429, 500, 501])
def test_other_statuses_are_kept_by_an_api_error(status: int) -> None:
    error = error_for_status(status, "m")
    assert type(error) is ApiError and http_status(error) == status


def test_unavailable_things_are_one_type() -> None:
    # fleetctl's blocking waits retry exactly these
    for error in (RegistryUnavailable("x"), SystemdUnavailable("x"), PeerUnreachable("x")):
        assert isinstance(error, Unavailable)
    assert isinstance(SystemdUnavailable("x", "org.freedesktop.DBus.Error.NoReply"), SystemdError)
