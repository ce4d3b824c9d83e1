"""Enclave images: offline, reproducible builds of the `pox/<name>` Docker images and their listing.

An image is Debian bookworm minbase by `mmdebstrap` with `SOURCE_DATE_EPOCH`, plus snakemake and
its dependencies unpacked from hash-pinned wheels and byte-compiled into hash-based pycs (so a
job's own `python3 -m snakemake ...` runs inside the image), written as a deterministic root
filesystem tar and imported into the engine. Its measurement is the SHA-256 of that tar, which
is also the digest the engine records for the image's only layer (`RootFS.Layers[0]`): it
depends on the content only, so building the same recipe twice from the same package versions
gives the same measurement, and an auditor can rebuild and compare. A build installs exactly
what `packages.lock` names, and archives every input in a content-addressed source store from
which the image can be rebuilt without the Debian archive or PyPI.

One module per concern:

- `recipes`: `enclave_images/<name>/recipe.json`, the apt sources, the recipe digest;
- `lockfile`: `packages.lock`, the exact Debian files (by SHA-256) and wheels of an image;
- `relock`: `pox images lock`, re-resolving against the archive and rewriting the lock;
- `debian`: finding each locked .deb (store, then apt sources) and the local apt repository;
- `store`: the content-addressed source store of build inputs, its export and import;
- `cache`: the build cache under `POX_IMAGE_CACHE`, the build lock, `expected-measurement`;
- `wheels`: snakemake's wheels, downloaded once with their hashes checked, and their unpacking;
- `rootfs`: mmdebstrap, the job user, the scrub of build-time files, the byte-compilation;
- `tarball`: the deterministic tar (the measurement);
- `steps`: running one external build command;
- `build`: the cache decision, the import into the engine, `build_image` and `list_images`;
- `archived`: images archived by measurement (export file, import, fetch from a store).

Engine calls go through `enclave.engine`, which the docker backend uses too; the backend never
imports this package. The names below are the package's public surface (`pox images`, tests).
"""

from typing import TYPE_CHECKING, Any

from pox_executor.enclave.images.recipes import Recipe, load_recipe, recipe_names

if TYPE_CHECKING:
    from pox_executor.enclave.images.build import (
        LABEL_MEASUREMENT,
        LABEL_NAME,
        LABEL_RECIPE,
        ImageInfo,
        build_image,
        build_images,
        list_images,
    )

_FROM_BUILD = {
    "LABEL_MEASUREMENT",
    "LABEL_NAME",
    "LABEL_RECIPE",
    "ImageInfo",
    "build_image",
    "build_images",
    "list_images",
}


def __getattr__(name: str) -> Any:
    # The builder (and the engine client it needs) loads on first use, so `pox verify` can read
    # recipes and expected measurements without the Docker SDK.
    if name in _FROM_BUILD:
        from pox_executor.enclave.images import build

        return getattr(build, name)
    raise AttributeError(name)


__all__ = [
    "LABEL_MEASUREMENT",
    "LABEL_NAME",
    "LABEL_RECIPE",
    "ImageInfo",
    "Recipe",
    "build_image",
    "build_images",
    "list_images",
    "load_recipe",
    "recipe_names",
]
