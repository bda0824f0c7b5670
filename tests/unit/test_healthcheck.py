"""The HealthCheck* keys of [X-Fleet] (fleetd/healthcheck.py), as a submission checks them."""

from __future__ import annotations

import pytest

from fleetd.errors import InvalidRequirements
from fleetd.healthcheck import ExecProbe, HealthCheck, HttpProbe, TcpProbe
from fleetd.specifiers import HostFacts
from fleetd.unitcheck import check_unit
from fleetd.unitname import UnitName

HOST = HostFacts("node1.example.com", "a" * 32, "b" * 32, "6.1.0")


def unit(*lines: str) -> str:
    return "[Service]\nExecStart=/bin/sleep 1000\n\n[X-Fleet]\n" + "\n".join(lines) + "\n"


def health(name: str, *lines: str) -> HealthCheck | None:
    return check_unit(name, unit(*lines)).requirements.health


def probe(check: str, name: str = "web@8080.service") -> object:
    found = health(name, f"HealthCheck={check}")
    assert found is not None
    return found.probe(UnitName.parse(name), HOST)


def test_no_check_without_the_key() -> None:
    assert check_unit("web.service", unit("Global=true")).requirements.health is None


def test_defaults_and_durations() -> None:
    assert health("web.service", "HealthCheck=tcp://127.0.0.1:80") == HealthCheck(
        "tcp://127.0.0.1:80", interval=5.0, timeout=2.0, grace=0.0
    )
    found = health(
        "web.service",
        "HealthCheck=tcp://127.0.0.1:80",
        "HealthCheckInterval=1min 30s",
        "HealthCheckTimeout=500ms",
        "HealthCheckGrace=10s",
    )
    assert found == HealthCheck("tcp://127.0.0.1:80", 90.0, 0.5, 10.0)


def test_last_assignment_wins_and_an_empty_one_resets() -> None:
    found = health(
        "web.service",
        "HealthCheck=tcp://127.0.0.1:80",
        "HealthCheck=tcp://127.0.0.1:81",
        "HealthCheckInterval=1s",
        "HealthCheckInterval=",
    )
    assert found == HealthCheck("tcp://127.0.0.1:81", interval=5.0)
    assert health("web.service", "HealthCheck=tcp://127.0.0.1:80", "HealthCheck=") is None


@pytest.mark.parametrize(
    ("check", "expected"),
    [
        ("http://127.0.0.1:%i/", HttpProbe("127.0.0.1", 8080, "/")),
        ("http://127.0.0.1:%i", HttpProbe("127.0.0.1", 8080, "/")),
        ("http://%H/health?x=%i", HttpProbe("node1.example.com", 80, "/health?x=8080")),
        ("HTTP://[::1]:81/a/b", HttpProbe("::1", 81, "/a/b")),
        ("tcp://%l:%i", TcpProbe("node1", 8080)),
        ("tcp://10.0.0.1:5432", TcpProbe("10.0.0.1", 5432)),
        ("exec:/usr/bin/check --unit %n --machine %m", ExecProbe(
            ("/usr/bin/check", "--unit", "web@8080.service", "--machine", "a" * 32)
        )),
        ('exec:/bin/sh -c "curl -f localhost:%i"', ExecProbe(
            ("/bin/sh", "-c", "curl -f localhost:8080")
        )),
        ("exec:pg_isready -q", ExecProbe(("pg_isready", "-q"))),
    ],
)  # fmt: skip
def test_probes_are_expanded_for_the_unit_on_its_machine(check: str, expected: object) -> None:
    assert probe(check) == expected


def test_a_specifier_that_expands_to_blanks_stays_one_argument() -> None:
    found = HealthCheck("exec:/bin/echo %I")
    assert found.probe(UnitName.parse("x@a\\x20b.service"), HOST) == ExecProbe(("/bin/echo", "a b"))


def test_a_template_is_checked_with_a_sample_instance() -> None:
    # %i is empty in the template itself: its instances are what will run
    assert health("web@.service", "HealthCheck=tcp://127.0.0.1:%i") is not None
    with pytest.raises(InvalidRequirements, match="port"):
        check_unit("web@abc.service", unit("HealthCheck=tcp://127.0.0.1:%i"))


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("HealthCheck=ftp://h/x", "HealthCheck=ftp://h/x: unknown scheme 'ftp'"),
        ("HealthCheck=127.0.0.1:80", "unknown scheme '127.0.0.1'"),
        ("HealthCheck=localhost", "unknown scheme 'localhost'"),
        ("HealthCheck=tcp://h:99999", "HealthCheck=tcp://h:99999: bad port '99999'"),
        ("HealthCheck=tcp://h:0", "port 0 is out of range"),
        ("HealthCheck=http://h:x/", "bad port 'x'"),
        ("HealthCheck=tcp://h", "needs a port"),
        ("HealthCheck=tcp://h:80/path", "HOST:PORT only"),
        ("HealthCheck=tcp://:80", "no host"),
        ("HealthCheck=http://a b:80/", "bad host"),
        ("HealthCheck=http://u:p@h:80/", "user names"),
        ("HealthCheck=http:/h", "expected http://"),
        ("HealthCheck=exec:", "HealthCheck=exec:: empty command"),
        ("HealthCheck=exec:   ", "empty command"),
        ('HealthCheck=exec:/bin/echo "a', "unterminated"),
        ("HealthCheck=exec:/bin/true ; /bin/false", "one command only"),
        ("HealthCheck=tcp://%u:80", "unsupported specifier %u"),
        ("HealthCheckInterval=5x", "HealthCheckInterval=5x: not a time span"),
        ("HealthCheckInterval=10ms", "HealthCheckInterval=10ms: must be at least 100ms"),
        ("HealthCheckTimeout=0", "HealthCheckTimeout=0: must be greater than 0"),
        ("HealthCheckTimeout=soon", "HealthCheckTimeout=soon"),
        ("HealthCheckGrace=-1s", "HealthCheckGrace=-1s"),
    ],
)
def test_bad_values_are_refused_naming_the_key(line: str, why: str) -> None:
    lines = [line] if line.startswith("HealthCheck=") else ["HealthCheck=tcp://h:1", line]
    with pytest.raises(InvalidRequirements) as caught:
        check_unit("web.service", unit(*lines))
    assert why in str(caught.value)


def test_durations_without_a_check_are_a_warning() -> None:
    checked = check_unit("web.service", unit("HealthCheckInterval=1s"))
    assert checked.requirements.health is None
    assert any("HealthCheckInterval without HealthCheck=" in w for w in checked.warnings)


def test_the_keys_are_not_unknown_and_a_typo_suggests_them() -> None:
    assert check_unit("web.service", unit("HealthCheck=tcp://h:1")).warnings == ()
    warned = check_unit("web.service", unit("HealthChek=tcp://h:1")).warnings
    assert any("did you mean HealthCheck?" in w for w in warned)


def test_a_probe_reads_as_written() -> None:
    assert str(HttpProbe("::1", 81, "/a")) == "http://[::1]:81/a"
    assert str(TcpProbe("h", 1)) == "tcp://h:1"
    assert str(ExecProbe(("/bin/true", "x"))) == "exec:/bin/true x"
