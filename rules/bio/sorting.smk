# Sorting and indexing: coordinate-sorted BAM and its index with samtools. Image: pox/bio.


rule bio_samtools_sort_index:
    """samtools sort, then samtools index."""
    input:
        f"{BIO_RESULTS}/mapped/{{sample}}.unsorted.bam",
    output:
        bam=f"{BIO_RESULTS}/mapped/{{sample}}.bam",
        bai=f"{BIO_RESULTS}/mapped/{{sample}}.bam.bai",
    threads: 2
    log:
        f"{BIO_RESULTS}/logs/samtools_sort/{{sample}}.log",
    container:
        BIO_IMAGE
    shell:
        'samtools sort --no-PG -@ {threads} -T "${{TMPDIR:-/tmp}}/bio-sort-{wildcards.sample}"'
        " -o {output.bam} {input} 2> {log}"
        " && samtools index {output.bam} {output.bai} 2>> {log}"
