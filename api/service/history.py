"""Reads of unit versions as wire views (no FastAPI: ``fleetctl --driver etcd`` uses it).

A unit name's history is its kept versions (fleetd/versions.py), each with a
one-line summary of what changed since the version before it.  It outlives
the unit: a destroyed unit's versions stay readable (``current`` is then
null), and a unit submitted again under the name continues the numbering.

Instances and templates: every instance (``web@1.service``) is a unit with
its own copy of the file, taken from the template when the instance was
created, so it has its own history.  ``web@.service``'s history is the
template's; an instance's version whose text is one of the template's kept
versions names it (``template``), which is how an instance can be told to
be on the template's version 3 or behind it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fleetd import versiondiff, versions
from fleetd.errors import InvalidInput, NotFound
from fleetd.registry.store import Store
from fleetd.unitname import UnitName
from fleetd.versions import Version

from .. import wire


def rfc3339(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _summary(version: Version, previous: Version | None) -> versiondiff.Summary | None:
    if version.number == 1:
        return versiondiff.first(version.text)
    if previous is None:
        return None
    return versiondiff.summarize(previous.text, version.text)


def _info(
    version: Version, previous: Version | None, template: wire.TemplateVersion | None
) -> wire.UnitVersionInfo:
    summary = _summary(version, previous)
    return wire.UnitVersionInfo(
        version=version.number,
        hash=version.hash,
        time=rfc3339(version.time),
        by=version.by,
        remote=version.remote,
        linesAdded=summary.added if summary else None,
        linesRemoved=summary.removed if summary else None,
        changes=summary.line if summary else f"version {version.number - 1} no longer kept",
        template=template,
    )


async def _template_versions(store: Store, name: UnitName) -> dict[str, int]:
    """Hash -> the newest kept version of the instance's template with that text."""
    if name.template is None or name.is_template:
        return {}
    return {v.hash: v.number for v in await store.list_versions(name.template)}


async def version_list(store: Store, name: str) -> wire.UnitVersionList:
    """The kept versions of unit ``name``, oldest first; NotFound if the name has
    neither a unit nor a version."""
    parsed = UnitName.parse(name)
    kept = await store.list_versions(parsed.name)
    unit = await store.get_unit(parsed.name)
    if not kept and unit is None:
        raise NotFound(f"unit {parsed.name} does not exist and has no versions")
    by_number = {v.number: v for v in kept}
    of_template = await _template_versions(store, parsed)
    current = None
    if unit is not None and kept and kept[-1].hash == unit.hash:
        current = kept[-1].number
    infos = []
    for version in kept:
        template = None
        if version.hash in of_template and parsed.template is not None:
            template = wire.TemplateVersion(name=parsed.template, version=of_template[version.hash])
        infos.append(_info(version, by_number.get(version.number - 1), template))
    return wire.UnitVersionList(name=parsed.name, current=current, versions=infos)


async def get_version(store: Store, name: str, number: int) -> wire.UnitVersion:
    """Version ``number`` of unit ``name`` with its text; InvalidInput for a number
    below 1, NotFound (saying which versions are kept) if it is not kept."""
    parsed = UnitName.parse(name)
    if number < 1:
        raise InvalidInput(f"version must be a number from 1, got {number}")
    head = await store.get_version_head(parsed.name)
    if head is None:
        raise NotFound(f"unit {parsed.name} has no versions")
    window = versions.kept(head[0].number)
    version = await store.get_version(parsed.name, number) if number in window else None
    if version is None:
        last = window.stop - 1
        which = (
            f"versions {window.start}-{last} are" if window.start < last else f"version {last} is"
        )
        raise NotFound(f"unit {parsed.name} has no version {number} ({which} kept)")
    return wire.UnitVersion(
        name=parsed.name,
        version=version.number,
        hash=version.hash,
        time=rfc3339(version.time),
        by=version.by,
        remote=version.remote,
        text=version.text,
        previous=number - 1 if number - 1 in window else None,
    )
