# Variant calling: joint calling over all samples with bcftools mpileup + call (multiallelic
# sites split, indels left-aligned), then soft filtering. Image: pox/bio (bcftools).


rule bio_bcftools_call:
    """Joint calling over config['samples']; ploidy from config['calling']['ploidy']."""
    input:
        fasta=BIO_REF,
        fai=BIO_REF + ".fai",
        bams=expand(f"{BIO_RESULTS}/mapped/{{sample}}.bam", sample=bio_samples()),
        bais=expand(f"{BIO_RESULTS}/mapped/{{sample}}.bam.bai", sample=bio_samples()),
    output:
        f"{BIO_RESULTS}/calls/raw.vcf.gz",
    params:
        ploidy=bio_setting("calling")["ploidy"],
    threads: 2
    log:
        f"{BIO_RESULTS}/logs/bcftools_call.log",
    container:
        BIO_IMAGE
    shell:
        "(bcftools mpileup --no-version -f {input.fasta} -a FORMAT/AD,FORMAT/DP -d 1000"
        " -Ou {input.bams}"
        " | bcftools call --no-version --ploidy {params.ploidy} -m -v -Ou"
        " | bcftools norm --no-version -f {input.fasta} -m -any --threads {threads}"
        " -Oz -o {output}) 2> {log}"


rule bio_bcftools_filter:
    """Calls below the quality or depth threshold are kept but marked LowQual; indexed (CSI)."""
    input:
        f"{BIO_RESULTS}/calls/raw.vcf.gz",
    output:
        vcf=f"{BIO_RESULTS}/calls/filtered.vcf.gz",
        csi=f"{BIO_RESULTS}/calls/filtered.vcf.gz.csi",
    params:
        min_qual=bio_setting("calling")["min_qual"],
        min_depth=bio_setting("calling")["min_depth"],
    log:
        f"{BIO_RESULTS}/logs/bcftools_filter.log",
    container:
        BIO_IMAGE
    shell:
        "(bcftools filter --no-version -s LowQual"
        " -e 'QUAL<{params.min_qual} || INFO/DP<{params.min_depth}' -Oz -o {output.vcf} {input}"
        " && bcftools index -o {output.csi} {output.vcf}) 2> {log}"
