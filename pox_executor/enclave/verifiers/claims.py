"""What a type-specific verifier hands to the common pipeline: `TeeClaims` and time helpers.

Each evidence type (`dcap`, `snp`, `sim`) parses its native blob, checks authenticity and
freshness, and returns `TeeClaims`; the pipeline then applies the checks that are the same for
every type (report data, debug, measurements, TCB policy). This module owns that hand-over shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pox_executor.enclave.verifiers.report import Failure


@dataclass
class TeeClaims:
    """Claims of one piece of evidence, authenticated or not (see `authentic`)."""

    type: str
    measurements: dict[str, str]
    report_data: bytes
    debug: bool
    authentic: bool
    tcb_status: str | None = None
    advisories: tuple[str, ...] = ()
    failures: list[Failure] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    window: tuple[datetime, datetime] | None = None
    simulated: bool = False
    details: dict[str, Any] = field(default_factory=dict)


def iso(moment: datetime) -> str:
    """RFC 3339 UTC with a Z suffix, seconds precision (what collateral documents use)."""
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    """Parse an RFC 3339 / ISO 8601 time; a time without zone is taken as UTC."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def one_line(message: str) -> str:
    """Collapse a multi-line library error (e.g. Rust 'Caused by:' chains) into one line."""
    parts = [p.strip() for p in message.splitlines() if p.strip()]
    parts = [p for p in parts if p != "Caused by:"]
    return "; ".join(parts)
