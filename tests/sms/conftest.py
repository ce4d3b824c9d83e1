"""Fixtures of the key-broker tests: a running broker with an empty state directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from broker_process import BrokerProcess


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    process = BrokerProcess(tmp_path / "sms-state")
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def module_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    """One broker for a whole module whose tests do not depend on each other's state."""
    process = BrokerProcess(tmp_path_factory.mktemp("sms") / "sms-state")
    process.start()
    try:
        yield process
    finally:
        process.stop()
