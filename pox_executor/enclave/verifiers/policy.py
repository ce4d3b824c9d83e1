"""The attestation policy: which measurements, TCB levels, advisories and debug states we accept.

This module owns the JSON policy file format documented in `docs/attestation-policy.md`, its
loader (every error names the file, the field and what was expected) and the TCB status order.
Applying the policy to a parsed report is the pipeline's job (`pipeline.py`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pox_executor.errors import EvidenceError

POLICY_VERSION = 1

# Intel TCB statuses from best to worst. `min_tcb_status: X` accepts X and everything before it.
# Revoked is never acceptable. The order is the one Intel's own appraisal uses for severity.
TCB_STATUS_ORDER = (
    "UpToDate",
    "SWHardeningNeeded",
    "ConfigurationNeeded",
    "ConfigurationAndSWHardeningNeeded",
    "OutOfDate",
    "OutOfDateConfigurationNeeded",
)
REVOKED = "Revoked"

# Measurement fields a policy may pin, per evidence type, with their size in bytes.
MEASUREMENT_FIELDS: dict[str, dict[str, int]] = {
    "sgx-dcap-quote": {"mrenclave": 32, "mrsigner": 32},
    "tdx-quote": {"mrtd": 48, "rtmr0": 48, "rtmr1": 48, "rtmr2": 48, "rtmr3": 48},
    "snp-report": {"measurement": 48, "host_data": 32},
    "sim-report": {"measurement": 0},  # free-form text for the simulated TEE
}

# AMD SNP TCB components (reported_tcb bytes 0, 1, 6, 7 on Milan and Genoa).
SNP_TCB_COMPONENTS = ("bootloader", "tee", "snp", "microcode")

_TOP_KEYS = {
    "version",
    "description",
    "allow_debug",
    "min_tcb_status",
    "allowed_advisories",
    "measurements",
    "tdx",
    "snp",
}
_TDX_KEYS = {"allow_dynamic_platform", "allow_cached_keys", "allow_smt"}
_SNP_KEYS = {"min_tcb", "allow_smt"}


@dataclass(frozen=True)
class TdxPlatformPolicy:
    """Platform properties from the TDX PCK certificate that a policy may refuse."""

    allow_dynamic_platform: bool = True
    allow_cached_keys: bool = True
    allow_smt: bool = True


@dataclass(frozen=True)
class SnpPolicy:
    """Minimum reported TCB component versions, and whether SMT may be enabled (policy bit 16)."""

    min_tcb: Mapping[str, int] = field(default_factory=dict)
    allow_smt: bool = True


@dataclass(frozen=True)
class Policy:
    """An attestation policy. The default accepts any authentic, non-debug evidence.

    `measurements` is None when the policy does not pin measurements at all; otherwise it maps
    an evidence type to the list of accepted reference values (each a mapping of field name to
    lowercase hex; all fields of one entry must match) and types it does not list are rejected.
    `min_tcb_status` None accepts every status but Revoked; `allowed_advisories` None accepts
    any advisory, a tuple accepts only those listed.
    """

    allow_debug: bool = False
    min_tcb_status: str | None = None
    allowed_advisories: tuple[str, ...] | None = None
    measurements: Mapping[str, tuple[Mapping[str, str], ...]] | None = None
    tdx: TdxPlatformPolicy = field(default_factory=TdxPlatformPolicy)
    snp: SnpPolicy = field(default_factory=SnpPolicy)
    source: str = "<default policy>"

    def tcb_acceptable(self, status: str) -> bool:
        """Whether an Intel TCB status meets `min_tcb_status` (Revoked never does)."""
        if status == REVOKED:
            return False
        if self.min_tcb_status is None:
            return True
        if status not in TCB_STATUS_ORDER:
            return False
        return TCB_STATUS_ORDER.index(status) <= TCB_STATUS_ORDER.index(self.min_tcb_status)


def load_policy(path: str | Path) -> Policy:
    """Read and validate a policy file; EvidenceError names the file, field and expectation."""
    where = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise EvidenceError(f"{where}: cannot read policy file ({exc.strerror})") from exc
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise EvidenceError(f"{where}: not valid JSON ({exc})") from exc
    return parse_policy(data, source=where)


def parse_policy(data: Any, *, source: str = "<policy>") -> Policy:
    """Validate a decoded policy document (see docs/attestation-policy.md)."""
    if not isinstance(data, Mapping):
        raise _err(source, "(top level)", "an object", data)
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise EvidenceError(
            f"{source}: unknown field {unknown[0]!r}; expected only {', '.join(sorted(_TOP_KEYS))}"
        )
    version = data.get("version", POLICY_VERSION)
    if version != POLICY_VERSION:
        raise _err(source, "version", f"the number {POLICY_VERSION}", version)
    description = data.get("description", "")
    if not isinstance(description, str):
        raise _err(source, "description", "a string", description)
    allow_debug = _bool(data, "allow_debug", False, source, "allow_debug")

    min_tcb = data.get("min_tcb_status")
    if min_tcb is not None and min_tcb not in TCB_STATUS_ORDER:
        raise _err(source, "min_tcb_status", "one of " + ", ".join(TCB_STATUS_ORDER), min_tcb)

    advisories_raw = data.get("allowed_advisories")
    advisories: tuple[str, ...] | None = None
    if advisories_raw is not None:
        if not isinstance(advisories_raw, list) or not all(
            isinstance(a, str) and a for a in advisories_raw
        ):
            raise _err(
                source,
                "allowed_advisories",
                'a list of advisory ids such as "INTEL-SA-00615", or null for any',
                advisories_raw,
            )
        advisories = tuple(advisories_raw)

    measurements = _measurements(data.get("measurements"), source)

    tdx_raw = data.get("tdx", {})
    if not isinstance(tdx_raw, Mapping):
        raise _err(source, "tdx", "an object", tdx_raw)
    _no_unknown(tdx_raw, _TDX_KEYS, source, "tdx")
    tdx = TdxPlatformPolicy(
        allow_dynamic_platform=_bool(
            tdx_raw, "allow_dynamic_platform", True, source, "tdx.allow_dynamic_platform"
        ),
        allow_cached_keys=_bool(
            tdx_raw, "allow_cached_keys", True, source, "tdx.allow_cached_keys"
        ),
        allow_smt=_bool(tdx_raw, "allow_smt", True, source, "tdx.allow_smt"),
    )

    snp_raw = data.get("snp", {})
    if not isinstance(snp_raw, Mapping):
        raise _err(source, "snp", "an object", snp_raw)
    _no_unknown(snp_raw, _SNP_KEYS, source, "snp")
    min_tcb_raw = snp_raw.get("min_tcb", {})
    if not isinstance(min_tcb_raw, Mapping):
        raise _err(source, "snp.min_tcb", "an object of component -> minimum version", min_tcb_raw)
    _no_unknown(min_tcb_raw, set(SNP_TCB_COMPONENTS), source, "snp.min_tcb")
    for name, value in min_tcb_raw.items():
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 255:
            raise _err(source, f"snp.min_tcb.{name}", "an integer from 0 to 255", value)
    snp = SnpPolicy(
        min_tcb=dict(min_tcb_raw),
        allow_smt=_bool(snp_raw, "allow_smt", True, source, "snp.allow_smt"),
    )
    return Policy(
        allow_debug=allow_debug,
        min_tcb_status=min_tcb,
        allowed_advisories=advisories,
        measurements=measurements,
        tdx=tdx,
        snp=snp,
        source=source,
    )


def _measurements(raw: Any, source: str) -> dict[str, tuple[Mapping[str, str], ...]] | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise _err(source, "measurements", "an object of evidence type -> list of entries", raw)
    result: dict[str, tuple[Mapping[str, str], ...]] = {}
    for kind, entries in raw.items():
        if kind not in MEASUREMENT_FIELDS:
            raise EvidenceError(
                f"{source}: field 'measurements.{kind}': unknown evidence type; expected one of "
                + ", ".join(MEASUREMENT_FIELDS)
            )
        if not isinstance(entries, list):
            raise _err(source, f"measurements.{kind}", "a list of reference-value objects", entries)
        fields = MEASUREMENT_FIELDS[kind]
        parsed: list[Mapping[str, str]] = []
        for index, entry in enumerate(entries):
            where = f"measurements.{kind}[{index}]"
            if not isinstance(entry, Mapping) or not entry:
                raise _err(
                    source, where, "a non-empty object with fields " + ", ".join(fields), entry
                )
            values: dict[str, str] = {}
            for name, value in entry.items():
                if name not in fields:
                    raise EvidenceError(
                        f"{source}: field '{where}.{name}': not a measurement of {kind}; "
                        f"expected one of {', '.join(fields)}"
                    )
                size = fields[name]
                if size == 0:
                    if not isinstance(value, str) or not value:
                        raise _err(source, f"{where}.{name}", "a non-empty string", value)
                    values[name] = value
                    continue
                if not isinstance(value, str) or not _is_hex(value, size):
                    raise _err(
                        source,
                        f"{where}.{name}",
                        f"{2 * size} hex characters ({size} bytes)",
                        value,
                    )
                values[name] = value.lower()
            parsed.append(values)
        result[kind] = tuple(parsed)
    return result


def _is_hex(value: str, size: int) -> bool:
    if len(value) != 2 * size:
        return False
    try:
        bytes.fromhex(value)
    except ValueError:
        return False
    return True


def _bool(data: Mapping[str, Any], key: str, default: bool, source: str, where: str) -> bool:
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise _err(source, where, "true or false", value)
    return value


def _no_unknown(data: Mapping[str, Any], allowed: set[str], source: str, where: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise EvidenceError(
            f"{source}: unknown field '{where}.{unknown[0]}'; expected only "
            + ", ".join(sorted(allowed))
        )


def _err(source: str, where: str, expected: str, got: Any) -> EvidenceError:
    shown = json.dumps(got) if not isinstance(got, (bytes, bytearray)) else repr(got)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return EvidenceError(f"{source}: field '{where}': expected {expected}, got {shown}")
