"""Final report of the example workflow: called variants scored against the planted truth.

Run by Snakemake's `script:` directive (rule `report`). Reads the normalized truth VCF of every
isolate, the filtered joint calls, the fastp and samtools flagstat QC files and the per-window
haplotype FASTA files, and writes:

- summary.tsv: one row per isolate (planted, called, TP, FP, FN, precision, recall, read QC);
- variants.tsv: every planted or called variant per isolate with its status (TP, FP, FN);
- report.md: the same for a person, plus the windows the checkpoint produced.

Only the standard library is used, so the script runs in any enclave image with Python.
"""

import gzip
import json
from dataclasses import dataclass
from pathlib import Path

Key = tuple[str, int, str, str]  # contig, pos, ref, alt


@dataclass
class Call:
    key: Key
    qual: float
    depth: int
    passed: bool


def open_text(path: Path):
    return gzip.open(path, "rt") if path.suffix == ".gz" else path.open()


def variant_kind(ref: str, alt: str) -> str:
    if len(ref) == len(alt):
        return "snv" if len(ref) == 1 else "mnv"
    return "ins" if len(alt) > len(ref) else "del"


def read_truth(path: Path) -> set[Key]:
    truth = set()
    with open_text(path) as handle:
        for line in handle:
            if line.startswith("#"):
                continue
            chrom, pos, _id, ref, alt = line.split("\t")[:5]
            for allele in alt.split(","):
                truth.add((chrom, int(pos), ref, allele))
    return truth


def read_calls(path: Path) -> dict[str, dict[Key, Call]]:
    """Calls per sample: sites where the sample's haploid genotype is the ALT allele."""
    per_sample: dict[str, dict[Key, Call]] = {}
    samples: list[str] = []
    with open_text(path) as handle:
        for line in handle:
            if line.startswith("##"):
                continue
            fields = line.rstrip("\n").split("\t")
            if line.startswith("#CHROM"):
                samples = fields[9:]
                per_sample = {s: {} for s in samples}
                continue
            chrom, pos, _id, ref, alt, qual, filt, info, fmt = fields[:9]
            if "," in alt:
                raise SystemExit(
                    f"{path}: multiallelic record at {chrom}:{pos}; split with norm -m"
                )
            depth = next((int(x[3:]) for x in info.split(";") if x.startswith("DP=")), 0)
            gt_index = fmt.split(":").index("GT")
            for sample, values in zip(samples, fields[9:], strict=True):
                gt = values.split(":")[gt_index]
                if gt in ("1", "1/1", "1|1"):
                    key = (chrom, int(pos), ref, alt)
                    per_sample[sample][key] = Call(key, float(qual), depth, filt == "PASS")
    return per_sample


def read_fastp(path: Path) -> dict[str, float]:
    data = json.loads(path.read_text())
    summary = data["summary"]
    return {
        "reads_raw": summary["before_filtering"]["total_reads"],
        "reads_trimmed": summary["after_filtering"]["total_reads"],
        "q30_rate": summary["after_filtering"]["q30_rate"],
        "adapter_trimmed_reads": data.get("adapter_cutting", {}).get("adapter_trimmed_reads", 0),
    }


def read_flagstat(path: Path) -> dict[str, float]:
    """samtools flagstat -O tsv: passed, failed, description."""
    counts = {}
    for line in path.read_text().splitlines():
        passed, _failed, what = line.split("\t")
        counts[what] = passed
    return {
        "mapped_pct": float(counts["mapped %"].rstrip("%")),
        "properly_paired_pct": float(counts["properly paired %"].rstrip("%")),
    }


def read_fasta(path: Path) -> dict[str, str]:
    records: dict[str, str] = {}
    name = None
    for line in path.read_text().splitlines():
        if line.startswith(">"):
            name = line[1:].split()[0]
            records[name] = ""
        elif name is not None:
            records[name] += line.strip()
    return records


def ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 1.0


def build(inputs: dict, samples: list[str]) -> tuple[list[dict], list[dict], list[dict]]:
    calls = read_calls(Path(inputs["calls"]))
    summary, variants = [], []
    for sample, truth_path, fastp_path, flagstat_path in zip(
        samples, inputs["truth"], inputs["fastp"], inputs["flagstat"], strict=True
    ):
        truth = read_truth(Path(truth_path))
        called = calls.get(sample, {})
        passed = {key for key, call in called.items() if call.passed}
        tp, fp, fn = truth & passed, passed - truth, truth - passed
        for status, keys in (("TP", tp), ("FP", fp), ("FN", fn)):
            for key in keys:
                call = called.get(key)
                variants.append(
                    {
                        "sample": sample,
                        "contig": key[0],
                        "pos": key[1],
                        "ref": key[2],
                        "alt": key[3],
                        "kind": variant_kind(key[2], key[3]),
                        "status": status,
                        "qual": f"{call.qual:.1f}" if call else ".",
                        "depth": call.depth if call else ".",
                        "filter": ("PASS" if call.passed else "LowQual") if call else ".",
                    }
                )
        summary.append(
            {
                "sample": sample,
                "planted": len(truth),
                "called": len(passed),
                "true_positives": len(tp),
                "false_positives": len(fp),
                "false_negatives": len(fn),
                "precision": f"{ratio(len(tp), len(passed)):.3f}",
                "recall": f"{ratio(len(tp), len(truth)):.3f}",
                **read_fastp(Path(fastp_path)),
                **read_flagstat(Path(flagstat_path)),
            }
        )
    variants.sort(key=lambda row: (row["sample"], row["pos"], row["alt"]))
    windows = []
    for path in inputs["haplotypes"]:
        records = read_fasta(Path(path))
        reference = records.get("reference", "")
        windows.append(
            {
                "window": Path(path).stem,
                "isolates_differing": sum(
                    seq.upper() != reference.upper()
                    for name, seq in records.items()
                    if name != "reference"
                ),
                "lengths": ", ".join(f"{name} {len(seq)}" for name, seq in records.items()),
            }
        )
    return summary, variants, windows


def write_tsv(path: Path, rows: list[dict]) -> None:
    if not rows:
        path.write_text("")
        return
    columns = list(rows[0])
    lines = ["\t".join(columns)] + ["\t".join(str(row[c]) for c in columns) for row in rows]
    path.write_text("\n".join(lines) + "\n")


def markdown_table(rows: list[dict], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row[c]) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def write_markdown(path: Path, summary: list[dict], variants: list[dict], windows: list[dict]):
    errors = [row for row in variants if row["status"] != "TP"]
    verdict = (
        "Every planted variant was called and nothing else was."
        if not errors
        else f"{len(errors)} discordant variant(s), listed below."
    )
    text = [
        "# Lambda phage variant calling: calls against the planted truth",
        "",
        verdict,
        "",
        "## Per isolate",
        "",
        markdown_table(
            summary,
            [
                "sample",
                "planted",
                "called",
                "true_positives",
                "false_positives",
                "false_negatives",
                "precision",
                "recall",
                "reads_trimmed",
                "mapped_pct",
            ],
        ),
        "",
        "## Windows with PASS calls (from the `variant_windows` checkpoint)",
        "",
        markdown_table(windows, ["window", "isolates_differing", "lengths"]) if windows else "none",
        "",
        "## Discordant variants",
        "",
        markdown_table(errors, ["sample", "pos", "ref", "alt", "kind", "status", "qual", "filter"])
        if errors
        else "none",
        "",
    ]
    path.write_text("\n".join(text))


def main(inputs: dict, samples: list[str], outputs: dict, log: Path) -> None:
    summary, variants, windows = build(inputs, samples)
    write_tsv(Path(outputs["summary"]), summary)
    write_tsv(Path(outputs["variants"]), variants)
    write_markdown(Path(outputs["markdown"]), summary, variants, windows)
    log.write_text(
        "".join(
            f"{row['sample']}: precision {row['precision']} recall {row['recall']}\n"
            for row in summary
        )
    )


if "snakemake" in globals():
    sm = snakemake  # type: ignore[name-defined]  # noqa: F821  (injected by Snakemake)
    main(
        {
            "calls": sm.input.calls,
            "truth": list(sm.input.truth),
            "fastp": list(sm.input.fastp),
            "flagstat": list(sm.input.flagstat),
            "haplotypes": list(sm.input.haplotypes),
        },
        list(sm.params.samples),
        {
            "summary": sm.output.summary,
            "variants": sm.output.variants,
            "markdown": sm.output.markdown,
        },
        Path(sm.log[0]),
    )
