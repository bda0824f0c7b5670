"""etcd's own authentication for fleetd: a user and a role that may only touch the registry.

``ensure_auth`` (as etcd's root, by root's client certificate) makes the
users ``root`` and ``fleetd`` without passwords (etcd names a client by its
certificate's common name), the role ``fleet`` with read and write on the
keys under the registry prefix and nothing else, grants it to ``fleetd``,
and turns authentication on.  Every step is idempotent: what is there
already is kept, so provisioning may run it on every machine, again and
again.  Used by ``fleetd pki etcd-auth`` (vagrant/provision.sh) and the
sandbox's ``--secure`` mode.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence

import grpc.aio
from etcd3aio import EtcdError, PermissionType, prefix_range_end

from fleetd.errors import FleetError, RegistryError
from fleetd.registry.etcd_connection import EtcdConnection, translate

USER = "fleetd"
ROLE = "fleet"


async def _unless_there(step: Awaitable[object]) -> None:
    try:
        await step
    except (EtcdError, grpc.aio.AioRpcError) as exc:
        detail = exc.details() if isinstance(exc, grpc.aio.AioRpcError) else str(exc)
        if "already exists" not in (detail or ""):
            raise


async def ensure_auth(
    endpoints: Sequence[str],
    *,
    ca_file: str,
    cert_file: str,
    key_file: str,
    prefix: str,
    server_name: str | None = None,
    request_timeout: float = 10.0,
) -> None:
    """Authentication on, with ``fleetd`` limited to ``prefix``; RegistryError if etcd
    refuses (the certificate is not root's, or no quorum)."""
    connection = EtcdConnection(
        endpoints,
        ca_file=ca_file,
        cert_file=cert_file,
        key_file=key_file,
        tls_server_name=server_name,
        timeout=request_timeout,
    )
    try:
        await connection.connect()
        auth = connection.auth_service()
        await _unless_there(auth.user_add("root", no_password=True, timeout=request_timeout))
        await auth.user_grant_role("root", "root", timeout=request_timeout)
        await _unless_there(auth.role_add(ROLE, timeout=request_timeout))
        await auth.role_grant_permission(
            ROLE,
            prefix.encode(),
            prefix_range_end(prefix.encode()),
            perm_type=PermissionType.READWRITE,
            timeout=request_timeout,
        )
        await _unless_there(auth.user_add(USER, no_password=True, timeout=request_timeout))
        await auth.user_grant_role(USER, ROLE, timeout=request_timeout)
        await auth.auth_enable(timeout=request_timeout)
    except (EtcdError, grpc.aio.AioRpcError) as exc:
        raise RegistryError(
            f"cannot turn etcd's authentication on: {translate(exc, 'etcd auth')}"
        ) from exc
    except FleetError:
        raise
    finally:
        await connection.close()
