"""The throw-away PostgreSQL cluster the PostgreSQL backend's contract runs will use."""

from __future__ import annotations

import os

from tests.store_contract.pg import Cluster


def test_the_cluster_listens_on_loopback_and_makes_databases(postgresql: Cluster) -> None:
    assert postgresql.psql("SELECT 1") == "1"
    assert postgresql.psql("SHOW listen_addresses") == "127.0.0.1"
    dsn = postgresql.create_database("contract_probe")
    assert dsn.endswith(f":{postgresql.port}/contract_probe")
    assert postgresql.psql("SELECT current_database()", database="contract_probe") == "contract_probe"
    if os.geteuid() == 0:  # PostgreSQL refuses root: the cluster runs as another user
        assert postgresql.owner is not None and postgresql.owner.pw_uid != 0
