# Alignment: trimmed read pairs mapped with bwa mem, written as an unsorted BAM.
# Image: pox/bio (bwa, samtools). -K fixes bwa's batch size so the output does not depend on
# the thread count; --no-PG keeps the command line out of the BAM header.


rule bio_bwa_mem:
    """bwa mem with a read group (ID and SM = the sample)."""
    input:
        index=f"{BIO_RESULTS}/reference/bwa_index",
        r1=f"{BIO_RESULTS}/trimmed/{{sample}}_R1.fastq.gz",
        r2=f"{BIO_RESULTS}/trimmed/{{sample}}_R2.fastq.gz",
    output:
        temp(f"{BIO_RESULTS}/mapped/{{sample}}.unsorted.bam"),
    params:
        prefix=lambda wildcards, input: f"{input.index}/{BIO_GENOME}",
        read_group=lambda wildcards: f"@RG\\tID:{wildcards.sample}\\tSM:{wildcards.sample}\\tPL:ILLUMINA",
    threads: 2
    log:
        f"{BIO_RESULTS}/logs/bwa_mem/{{sample}}.log",
    container:
        BIO_IMAGE
    shell:
        "bwa mem -t {threads} -K 10000000 -R '{params.read_group}' {params.prefix}"
        " {input.r1} {input.r2} 2> {log}"
        " | samtools view --no-PG -b -o {output} -"
