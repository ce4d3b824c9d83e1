"""The result of an audit: findings with a level, where they were found and what check failed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ERROR = "error"
WARNING = "warning"
NOTE = "note"


@dataclass(frozen=True)
class Finding:
    level: str
    check: str
    message: str
    where: str = ""

    def render(self) -> str:
        place = f" [{self.where}]" if self.where else ""
        return f"{self.level.upper():7} {self.check}{place}: {self.message}"

    def to_json(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "check": self.check,
            "where": self.where,
            "message": self.message,
        }


@dataclass
class Report:
    """Findings plus counters; `ok` when no finding is an error."""

    subject: str
    findings: list[Finding] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    def add(self, level: str, check: str, message: str, where: str = "") -> None:
        self.findings.append(Finding(level, check, message, where))

    def error(self, check: str, message: str, where: str = "") -> None:
        self.add(ERROR, check, message, where)

    def warn(self, check: str, message: str, where: str = "") -> None:
        self.add(WARNING, check, message, where)

    def note(self, check: str, message: str, where: str = "") -> None:
        self.add(NOTE, check, message, where)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level == ERROR]

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_json(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "ok": self.ok,
            "facts": self.facts,
            "findings": [f.to_json() for f in self.findings],
        }
