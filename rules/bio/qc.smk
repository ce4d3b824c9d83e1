# QC summaries: samtools flagstat per sample, bcftools stats of the calls, and one TSV that
# gathers reads kept by fastp, reads mapped and PASS calls per sample. Image: pox/bio.


rule bio_samtools_flagstat:
    input:
        f"{BIO_RESULTS}/mapped/{{sample}}.bam",
    output:
        f"{BIO_RESULTS}/qc/{{sample}}.flagstat.tsv",
    container:
        BIO_IMAGE
    shell:
        "samtools flagstat -O tsv {input} > {output}"


rule bio_bcftools_stats:
    input:
        f"{BIO_RESULTS}/calls/filtered.vcf.gz",
    output:
        f"{BIO_RESULTS}/qc/calls.stats.txt",
    container:
        BIO_IMAGE
    shell:
        "bcftools stats -f PASS -s - {input} > {output}"


rule bio_qc_summary:
    """Per sample: reads before and after trimming (fastp), primary mapped reads and their share
    (samtools flagstat), PASS sites where the sample carries an ALT allele (bcftools stats PSC:
    non-ref homozygous + heterozygous + haploid ALT)."""
    input:
        fastp=expand(f"{BIO_RESULTS}/qc/{{sample}}.fastp.json", sample=bio_samples()),
        flagstat=expand(f"{BIO_RESULTS}/qc/{{sample}}.flagstat.tsv", sample=bio_samples()),
        stats=f"{BIO_RESULTS}/qc/calls.stats.txt",
    output:
        f"{BIO_RESULTS}/qc/summary.tsv",
    params:
        samples=bio_samples(),
        qc=f"{BIO_RESULTS}/qc",
    container:
        BIO_IMAGE
    shell:
        """
        printf 'sample\\treads_before\\treads_after\\tmapped\\tmapped_pct\\tpass_alt_sites\\n' > {output}
        for sample in {params.samples}; do
            json={params.qc}/$sample.fastp.json
            before=$(grep -A2 '"before_filtering"' $json | sed -n 's/.*"total_reads": *\\([0-9]*\\).*/\\1/p' | head -n 1)
            after=$(grep -A2 '"after_filtering"' $json | sed -n 's/.*"total_reads": *\\([0-9]*\\).*/\\1/p' | head -n 1)
            mapped=$(awk -F '\\t' '$3 == "primary mapped" {{print $1}}' {params.qc}/$sample.flagstat.tsv)
            pct=$(awk -F '\\t' '$3 == "primary mapped %" {{print $1}}' {params.qc}/$sample.flagstat.tsv)
            calls=$(awk -F '\\t' -v s=$sample '$1 == "PSC" && $3 == s {{print $5 + $6 + $13}}' {input.stats})
            printf '%s\\t%s\\t%s\\t%s\\t%s\\t%s\\n' $sample $before $after $mapped $pct $calls >> {output}
        done
        """
