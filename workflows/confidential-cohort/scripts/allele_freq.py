"""Alternate-allele frequency per variant of a VCF (GT fields, diploid, missing calls skipped).

Usage: python3 allele_freq.py COHORT.vcf > freqs.tsv
"""

import sys


def main(path: str) -> None:
    print("id\tchrom\tpos\tref\talt\tcalled_alleles\talt_alleles\talt_frequency")
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("#") or not line.strip():
                continue
            fields = line.rstrip("\n").split("\t")
            chrom, pos, ident, ref, alt = fields[:5]
            called = alt_count = 0
            for sample in fields[9:]:
                for allele in sample.split(":")[0].replace("|", "/").split("/"):
                    if allele == ".":
                        continue
                    called += 1
                    alt_count += allele != "0"
            freq = alt_count / called if called else float("nan")
            print(f"{ident}\t{chrom}\t{pos}\t{ref}\t{alt}\t{called}\t{alt_count}\t{freq:.4f}")


if __name__ == "__main__":
    main(sys.argv[1])
