"""`pox images`: build the enclave images offline and list them with their measurements.

This module owns only argument parsing and printing; building, measuring and listing are
`enclave.images`. Exit codes: 0 ok, 1 a build failed or (with `--check`) a measurement differs
from the recipe's `expected-measurement`, 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from pox_executor.enclave.images import ImageInfo, build_image, list_images, recipe_names


def register(subparsers: Any) -> None:
    images = subparsers.add_parser("images", help="build and list the enclave images")
    commands = images.add_subparsers(dest="images_command", metavar="ACTION")
    images.set_defaults(handler=lambda args: _help(images))
    build = commands.add_parser(
        "build",
        help="build pox/<NAME> offline from its recipe (all images without NAME)",
        description=(
            "Build enclave images from enclave_images/<NAME>/recipe.json: Debian bookworm "
            "minbase by mmdebstrap with SOURCE_DATE_EPOCH, snakemake from hash-pinned wheels, a "
            "deterministic root filesystem tar, docker import. The measurement is the tar's "
            "SHA-256 (the image's layer digest). A build with the same recipe digest and "
            "Debian archive state is reused unless --force."
        ),
    )
    build.add_argument("names", nargs="*", metavar="NAME", help="image names (default: all)")
    build.add_argument("--force", action="store_true", help="rebuild even when cached")
    build.add_argument(
        "--write-expected",
        action="store_true",
        help="write expected-measurement and packages.lock into the recipe folder",
    )
    build.add_argument(
        "--check",
        action="store_true",
        help="exit 1 when a measurement differs from the recipe's expected-measurement",
    )
    build.add_argument("--json", action="store_true", help="print the results as JSON")
    build.add_argument("--quiet", action="store_true", help="do not print build steps")
    build.set_defaults(handler=_build)
    listing = commands.add_parser("list", help="list the pox images the engine holds")
    listing.add_argument("--json", action="store_true", help="print as JSON")
    listing.add_argument(
        "--contents", action="store_true", help="also print every package in each image"
    )
    listing.set_defaults(handler=_list)


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _build(args: argparse.Namespace) -> int:
    names = list(args.names) or recipe_names()
    results: list[ImageInfo] = []
    for name in names:
        results.append(
            build_image(
                name,
                force=args.force,
                write_expected=args.write_expected,
                log=(lambda _: None) if args.quiet else _log,
            )
        )
    if args.json:
        print(json.dumps([r.to_json() for r in results], indent=2, sort_keys=True))
    else:
        _print_table(results)
    mismatched = [r for r in results if r.matches_expected is False]
    for r in mismatched:
        print(
            f"note: {r.name}: measurement {r.measurement[:16]} differs from expected "
            f"{(r.expected or '')[:16]} (package versions in the Debian archive moved? compare "
            f"with enclave_images/{r.name}/packages.lock)",
            file=sys.stderr,
        )
    return 1 if args.check and mismatched else 0


def _list(args: argparse.Namespace) -> int:
    infos = list_images()
    if args.json:
        print(json.dumps([i.to_json() for i in infos], indent=2, sort_keys=True))
        return 0
    if not infos:
        print("no pox images in the engine; build them with `pox images build`")
        return 0
    _print_table(infos)
    if args.contents:
        for info in infos:
            print(f"\n{info.name} ({info.tag}):")
            for package in info.packages or ("(contents unknown: built elsewhere)",):
                print(f"  {package}")
    return 0


def _print_table(infos: list[ImageInfo]) -> None:
    print(f"{'NAME':<8} {'TAG':<20} {'MEASUREMENT (sha256 of rootfs)':<66} {'SIZE':>9}  EXPECTED")
    for i in infos:
        expected = {True: "match", False: "DIFFERS", None: "-"}[i.matches_expected]
        built = "" if i.build_seconds is None else f"  built in {i.build_seconds:.0f} s"
        packages = [p for p in i.packages if not p.startswith("pypi:")]
        inside = f"  ({len(packages)} Debian packages)" if packages else ""
        print(
            f"{i.name:<8} {i.tag:<20} {i.measurement:<66} {i.size_bytes / 1e6:>7.0f}MB  "
            f"{expected}{built}{inside}"
        )
