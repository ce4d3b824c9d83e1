# Read trimming: adapters and low-quality tails removed from paired-end reads with fastp.
# Image: pox/bio (fastp). The trimmed reads are temp(): they only live until they are mapped.


rule bio_fastp_pe:
    """fastp on one sample's read pair; its JSON report feeds the QC summary."""
    input:
        r1=bio_setting("reads").replace("{mate}", "1"),
        r2=bio_setting("reads").replace("{mate}", "2"),
    output:
        r1=temp(f"{BIO_RESULTS}/trimmed/{{sample}}_R1.fastq.gz"),
        r2=temp(f"{BIO_RESULTS}/trimmed/{{sample}}_R2.fastq.gz"),
        json=f"{BIO_RESULTS}/qc/{{sample}}.fastp.json",
        html=f"{BIO_RESULTS}/qc/{{sample}}.fastp.html",
    params:
        min_quality=bio_setting("trimming")["min_quality"],
        min_length=bio_setting("trimming")["min_length"],
    threads: 2
    log:
        f"{BIO_RESULTS}/logs/fastp/{{sample}}.log",
    container:
        BIO_IMAGE
    shell:
        "fastp --in1 {input.r1} --in2 {input.r2} --out1 {output.r1} --out2 {output.r2}"
        " --detect_adapter_for_pe --qualified_quality_phred {params.min_quality}"
        " --length_required {params.min_length} --thread {threads}"
        " --json {output.json} --html {output.html} --report_title {wildcards.sample}"
        " 2> {log}"
