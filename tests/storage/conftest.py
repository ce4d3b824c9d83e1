"""One real IPFS node (js-ipfs's daemon, see `ipfs_daemon`) for the whole storage suite: it takes
15 s or more to start on a loaded machine, so the modules share it rather than start their own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from ipfs_daemon import IpfsDaemon


@pytest.fixture(scope="session")
def ipfs_node_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    daemon = IpfsDaemon(tmp_path_factory.mktemp("ipfs") / "repo")
    daemon.start()
    try:
        yield daemon.url
    finally:
        daemon.stop()
