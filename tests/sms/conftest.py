"""Fixtures of the key-broker tests: a running broker with an empty state directory."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from broker_process import BrokerProcess  # noqa: E402


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    process = BrokerProcess(tmp_path / "sms-state")
    process.start()
    try:
        yield process
    finally:
        process.stop()
