"""Writes deterministic growth measurements (site, day, value) with a fixed seed."""

import random

rng = random.Random(snakemake.params.seed)  # noqa: F821 - injected by Snakemake
with open(snakemake.output[0], "w") as out:  # noqa: F821
    out.write("site,day,value\n")
    for index, site in enumerate(snakemake.params.sites):  # noqa: F821
        slope = 0.5 + index * 0.25
        for day in range(snakemake.params.per_site):  # noqa: F821
            value = 10.0 + slope * day + rng.gauss(0.0, 1.0)
            out.write(f"{site},{day},{value:.4f}\n")
