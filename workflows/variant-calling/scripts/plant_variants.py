"""Plant known variants into the lambda genome: the truth set of the example workflow.

Run by Snakemake's `script:` directive (rule `plant_variants`). From one seed it designs the
variants of *all* isolates at once (shared ones plus private ones, never closer than
`min_spacing` bp to each other), then writes the requested isolate's haplotype FASTA and its
truth VCF (haploid, GT=1). Redesigning everything in every job keeps the isolates consistent
with each other without any job reading another's output.
"""

import random
from dataclasses import dataclass
from pathlib import Path

BASES = "ACGT"
EDGE_BP = 500  # reads thin out near the contig ends; keep planted variants away from them


@dataclass(frozen=True)
class Variant:
    pos: int  # 1-based VCF position
    ref: str
    alt: str
    kind: str  # snv, ins, del
    carriers: tuple[str, ...]


def read_fasta(path: Path) -> tuple[str, str]:
    lines = path.read_text().splitlines()
    if not lines or not lines[0].startswith(">"):
        raise SystemExit(f"{path}: expected a FASTA file starting with '>'")
    name = lines[0][1:].split()[0]
    return name, "".join(line.strip() for line in lines[1:]).upper()


def pick_positions(rng: random.Random, length: int, count: int, spacing: int) -> list[int]:
    """Draw `count` 0-based positions at least `spacing` apart, away from the contig ends."""
    chosen: list[int] = []
    attempts = 0
    while len(chosen) < count:
        attempts += 1
        if attempts > 100_000:
            raise SystemExit(f"cannot place {count} variants {spacing} bp apart in {length} bp")
        pos = rng.randrange(EDGE_BP, length - EDGE_BP)
        if all(abs(pos - other) >= spacing for other in chosen):
            chosen.append(pos)
    return chosen


def make_variant(rng: random.Random, seq: str, pos0: int, kind: str, carriers: tuple[str, ...]):
    ref_base = seq[pos0]
    if kind == "snv":
        alt = rng.choice([b for b in BASES if b != ref_base])
        return Variant(pos0 + 1, ref_base, alt, kind, carriers)
    size = rng.randint(1, 6)
    if kind == "ins":
        inserted = "".join(rng.choice(BASES) for _ in range(size))
        return Variant(pos0 + 1, ref_base, ref_base + inserted, kind, carriers)
    return Variant(pos0 + 1, seq[pos0 : pos0 + 1 + size], ref_base, kind, carriers)


def design(seq: str, samples: list[str], sim: dict) -> list[Variant]:
    """All planted variants of all samples, sorted by position."""
    rng = random.Random(int(sim["seed"]))
    kinds: list[tuple[str, tuple[str, ...]]] = []
    every = tuple(samples)
    kinds += [("snv", every)] * int(sim["shared_snvs"])
    kinds += [("ins" if i % 2 == 0 else "del", every) for i in range(int(sim["shared_indels"]))]
    for sample in samples:
        mine = (sample,)
        kinds += [("snv", mine)] * int(sim["private_snvs"])
        kinds += [("del" if i % 2 == 0 else "ins", mine) for i in range(int(sim["private_indels"]))]
    positions = pick_positions(rng, len(seq), len(kinds), int(sim["min_spacing"]))
    variants = [
        make_variant(rng, seq, pos0, kind, carriers)
        for pos0, (kind, carriers) in zip(positions, kinds, strict=True)
    ]
    return sorted(variants, key=lambda v: v.pos)


def apply(seq: str, variants: list[Variant]) -> str:
    """The haplotype carrying `variants`; applied right to left so positions stay valid."""
    out = seq
    for v in sorted(variants, key=lambda v: v.pos, reverse=True):
        start = v.pos - 1
        assert out[start : start + len(v.ref)] == v.ref, v
        out = out[:start] + v.alt + out[start + len(v.ref) :]
    return out


def write_vcf(path: Path, contig: str, length: int, sample: str, variants: list[Variant]) -> None:
    header = [
        "##fileformat=VCFv4.2",
        "##source=plant_variants.py (PoX variant-calling example)",
        f"##contig=<ID={contig},length={length}>",
        '##INFO=<ID=KIND,Number=1,Type=String,Description="Planted variant kind: snv, ins, del">',
        '##INFO=<ID=SHARED,Number=0,Type=Flag,Description="Carried by every isolate">',
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        "\t".join(
            ["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT", sample]
        ),
    ]
    rows = []
    for v in variants:
        info = f"KIND={v.kind}" + (";SHARED" if len(v.carriers) > 1 else "")
        rows.append(f"{contig}\t{v.pos}\t.\t{v.ref}\t{v.alt}\t.\tPASS\t{info}\tGT\t1")
    path.write_text("\n".join(header + rows) + "\n")


def write_fasta(path: Path, name: str, seq: str, width: int = 70) -> None:
    body = "\n".join(seq[i : i + width] for i in range(0, len(seq), width))
    path.write_text(f">{name}\n{body}\n")


def main(
    reference: Path, sample: str, samples: list[str], sim: dict, vcf: Path, fasta: Path, log: Path
) -> None:
    if sample not in samples:
        raise SystemExit(f"sample {sample!r} is not among the configured samples {samples}")
    contig, seq = read_fasta(reference)
    mine = [v for v in design(seq, samples, sim) if sample in v.carriers]
    write_vcf(vcf, contig, len(seq), sample, mine)
    write_fasta(fasta, f"{contig}_{sample}", apply(seq, mine))
    kinds = {kind: sum(v.kind == kind for v in mine) for kind in ("snv", "ins", "del")}
    log.write_text(
        f"{sample}: planted {len(mine)} variants {kinds} into {contig} ({len(seq)} bp)\n"
    )


if "snakemake" in globals():
    sm = snakemake  # type: ignore[name-defined]  # noqa: F821  (injected by Snakemake)
    main(
        Path(sm.input.reference),
        sm.wildcards.sample,
        list(sm.params.samples),
        dict(sm.params.simulation),
        Path(sm.output.vcf),
        Path(sm.output.haplotype),
        Path(sm.log[0]),
    )
