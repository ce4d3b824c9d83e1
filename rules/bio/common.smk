# Shared by the bio rule modules: settings with defaults, and the image every rule runs in.
# Settings come from the workflow's config (with `include:`) or from the `config:` given to
# `module` (with `use rule * from ...`); every key has a default.

import re

BIO_DEFAULTS = {
    "image": "pox/bio",  # pin a build with "pox/bio:<first 16 hex of its measurement>"
    "reads": "data/reads/{sample}_R{mate}.fastq.gz",
    "reference": "data/reference.fa",
    "results": "results",
    "genome": "genome",  # file name of the staged reference and of the bwa index prefix
    "contig": None,  # a name for the reference's first contig (None keeps the FASTA's own)
    "trimming": {"min_quality": 20, "min_length": 50},
    "calling": {"min_qual": 30, "min_depth": 10, "ploidy": 2},
}


def bio_setting(key):
    value = config.get(key, BIO_DEFAULTS[key])
    if isinstance(BIO_DEFAULTS[key], dict):
        return {**BIO_DEFAULTS[key], **value}
    return value


BIO_IMAGE = bio_setting("image")
BIO_RESULTS = bio_setting("results")
BIO_GENOME = bio_setting("genome")
BIO_REF = f"{BIO_RESULTS}/reference/{BIO_GENOME}.fa"


def bio_samples():
    if "samples" not in config:
        raise ValueError("rules/bio: config['samples'] must list the sample names")
    return list(config["samples"])


# Sample names are exactly the configured ones: without this, `results/mapped/{sample}.bam`
# would also match `x.unsorted.bam`, and Snakemake explores ever longer sample names.
wildcard_constraints:
    sample="|".join(re.escape(s) for s in bio_samples()),
