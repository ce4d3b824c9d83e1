# Reference preparation: the FASTA staged (decompressed when it ends in .gz) and indexed for
# samtools, and the bwa index. Image: pox/bio (samtools, bwa).


rule bio_stage_reference:
    """Copy (or decompress) the reference FASTA, name its first contig config['contig'] if set,
    and index it with samtools faidx."""
    input:
        bio_setting("reference"),
    output:
        fasta=BIO_REF,
        fai=BIO_REF + ".fai",
    params:
        # an empty sed script copies the FASTA unchanged
        rename=f"1s/^>[^ ]+/>{bio_setting('contig')}/" if bio_setting("contig") else "",
    container:
        BIO_IMAGE
    shell:
        "case {input} in *.gz) gzip -dc {input} ;; *) cat {input} ;; esac"
        " | sed -E '{params.rename}' > {output.fasta}"
        " && samtools faidx {output.fasta} --fai-idx {output.fai}"


rule bio_bwa_index:
    """BWT index for bwa mem (a directory: bwa writes five files under one prefix)."""
    input:
        BIO_REF,
    output:
        directory(f"{BIO_RESULTS}/reference/bwa_index"),
    params:
        prefix=BIO_GENOME,
    log:
        f"{BIO_RESULTS}/logs/bwa_index.log",
    container:
        BIO_IMAGE
    shell:
        "mkdir -p {output} && bwa index -p {output}/{params.prefix} {input} 2> {log}"
