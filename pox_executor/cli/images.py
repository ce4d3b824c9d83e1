"""`pox images`: lock, build, list, archive and fetch back the enclave images.

This module owns only argument parsing and printing; the work is `enclave.images` (`relock`,
`build`, `store`, `archived`, `ipfs`). Exit codes: 0 ok, 1 a build failed, a locked version
cannot be had, an offline rebuild differs from the recorded measurement, an import or a fetch
was refused or (with `--check`) a measurement differs from the recipe's `expected-measurement`;
2 usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pox_executor.cli import add_cid_profile_option
from pox_executor.enclave.images import ImageInfo, build_image, ipfs, list_images, recipe_names
from pox_executor.enclave.images.archived import export_image, fetch_image, import_image_file
from pox_executor.enclave.images.relock import lock_image
from pox_executor.enclave.images.store import SourceStore, default_store, export_store
from pox_executor.errors import UsageError
from pox_executor.storage.unixfs import get_profile


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
            "SHA-256 (the image's layer digest). Exactly the versions in packages.lock are "
            "installed, each checked by SHA-256, or the build fails naming them; every input is "
            "archived in the source store. A build with the same recipe digest (recipe and "
            "lock) is reused unless --force."
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
    build.add_argument(
        "--offline-from",
        type=Path,
        metavar="STORE",
        help="rebuild from this source store (folder or exported file) alone: no Debian "
        "archive, no PyPI; exit 1 unless the measurement is the one the store recorded",
    )
    build.add_argument(
        "--store", type=Path, metavar="DIR", help=f"source store to fill (default {_store()})"
    )
    build.add_argument("--json", action="store_true", help="print the results as JSON")
    build.add_argument("--quiet", action="store_true", help="do not print build steps")
    build.set_defaults(handler=_build)
    lock = commands.add_parser(
        "lock",
        help="re-resolve NAME against the Debian archive; rewrite packages.lock and "
        "expected-measurement together",
        description=(
            "Bootstrap the recipe from the apt sources, lock the exact package versions and "
            "file digests apt chose, archive the files in the source store, build the image "
            "from the new lock and record its measurement. Prints what changed."
        ),
    )
    lock.add_argument("names", nargs="*", metavar="NAME", help="image names (default: all)")
    lock.add_argument("--store", type=Path, metavar="DIR", help="source store to fill")
    lock.add_argument("--quiet", action="store_true", help="do not print build steps")
    lock.set_defaults(handler=_lock)
    store = commands.add_parser("store", help="the source store of build inputs")
    store_commands = store.add_subparsers(dest="store_command", metavar="ACTION")
    store.set_defaults(handler=lambda args: _help(store))
    store_export = store_commands.add_parser(
        "export", help="write the source store (or the inputs of some images) as one file"
    )
    store_export.add_argument("names", nargs="*", metavar="NAME", help="only these images")
    store_export.add_argument("-o", "--output", type=Path, required=True, metavar="FILE")
    store_export.add_argument("--store", type=Path, metavar="DIR", help="the store to export")
    store_export.set_defaults(handler=_store_export)
    store_push = store_commands.add_parser(
        "push",
        help="add the store's inputs (or those of some images) to an IPFS node, file by file",
        description="Each .deb, wheel and build tool becomes its own IPFS file (packages shared "
        "by images or unchanged across re-locks are stored once), and each build manifest too. "
        "The CIDs go into the IPFS index (image and recipe digest -> manifest CID, sha256 -> "
        "CID, profile).",
    )
    store_push.add_argument("names", nargs="*", metavar="NAME", help="only these images")
    _ipfs_options(store_push, required=True)
    store_push.add_argument("--store", type=Path, metavar="DIR", help="the store to push")
    store_push.set_defaults(handler=_store_push)
    store_fetch = store_commands.add_parser(
        "fetch",
        help="fetch the inputs of NAME from an IPFS node into a store folder (then build "
        "--offline-from it)",
    )
    store_fetch.add_argument("name", metavar="NAME")
    _ipfs_options(store_fetch, required=True, profile=False)
    store_fetch.add_argument("-o", "--output", type=Path, required=True, metavar="DIR")
    store_fetch.add_argument(
        "--recipe-digest", metavar="HEX", help="which build (default: this checkout's recipe)"
    )
    store_fetch.set_defaults(handler=_store_fetch)
    export = commands.add_parser(
        "export", help="archive an image by measurement: one file (-o) and/or a store (--store)"
    )
    export.add_argument("image", metavar="IMAGE", help="name (python), tag or measurement")
    export.add_argument("-o", "--output", type=Path, metavar="FILE")
    export.add_argument("--store", type=Path, metavar="DIR")
    export.set_defaults(handler=_export)
    push = commands.add_parser(
        "push", help="export an image and add it to an IPFS node; record measurement -> CID"
    )
    push.add_argument("image", metavar="IMAGE", help="name (python), tag or measurement")
    _ipfs_options(push, required=True)
    push.set_defaults(handler=_push)
    imp = commands.add_parser(
        "import", help="import an exported image; refused unless its content is its measurement"
    )
    imp.add_argument("file", type=Path, metavar="FILE")
    imp.add_argument("--expect", metavar="MEASUREMENT", help="refuse any other measurement")
    imp.add_argument("--store", type=Path, metavar="DIR", help="also archive it in this store")
    imp.set_defaults(handler=_import)
    fetch = commands.add_parser(
        "fetch",
        help="import the image with this measurement from a store or an IPFS node",
        description="From a store folder (--from) or an IPFS node (--ipfs, by the CID the IPFS "
        "index records, or --cid). The root filesystem's SHA-256 is recomputed: anything but "
        "MEASUREMENT is refused and nothing is imported.",
    )
    fetch.add_argument("measurement", metavar="MEASUREMENT")
    fetch.add_argument("--from", dest="store", type=Path, metavar="STORE", help="store folder")
    _ipfs_options(fetch, required=False)
    fetch.add_argument(
        "--cid",
        metavar="CID",
        help="fetch this CID instead of the index's (made with --cid-profile; an index entry "
        "names its own profile)",
    )
    fetch.set_defaults(handler=_fetch)
    listing = commands.add_parser("list", help="list the pox images the engine holds")
    listing.add_argument("--json", action="store_true", help="print as JSON")
    listing.add_argument(
        "--contents", action="store_true", help="also print every package in each image"
    )
    listing.set_defaults(handler=_list)


def _ipfs_options(parser: argparse.ArgumentParser, *, required: bool, profile: bool = True) -> None:
    parser.add_argument(
        "--ipfs",
        metavar="URL",
        required=required,
        help="Kubo RPC API of the IPFS node, e.g. http://127.0.0.1:5001",
    )
    parser.add_argument(
        "--index",
        type=Path,
        metavar="FILE",
        help="the IPFS index: measurement and store -> CID (default <store>/ipfs-index.json)",
    )
    if profile:
        add_cid_profile_option(parser)


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _store() -> Path:
    return default_store()


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
                offline_from=args.offline_from,
                store=args.store,
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
    differing = False
    for r in results:
        recorded = r.extra.get("recorded_measurement")
        if recorded is None:
            continue
        if recorded == r.measurement:
            print(f"{r.name}: rebuilt from the store alone: the recorded measurement, bit for bit")
        else:
            differing = True
            print(
                f"{r.name}: rebuilt from the store alone: {r.measurement} differs from the "
                f"recorded {recorded}",
                file=sys.stderr,
            )
    return 1 if differing or (args.check and mismatched) else 0


def _lock(args: argparse.Namespace) -> int:
    for name in list(args.names) or recipe_names():
        result = lock_image(name, log=(lambda _: None) if args.quiet else _log, store=args.store)
        state = "changed" if result.changed else "unchanged"
        print(f"pox/{name}: lock {state}")
        for line in result.summary():
            print(line)
        if result.lock_diff:
            print(result.lock_diff, end="")
    return 0


def _store_export(args: argparse.Namespace) -> int:
    store = SourceStore(args.store or default_store())
    manifests = None
    if args.names:
        manifests = [p for p in store.manifests() if p.stem.rsplit("-", 1)[0] in args.names]
        if not manifests:
            raise UsageError(f"source store {store.root} holds no build of {', '.join(args.names)}")
    count = export_store(store, args.output, manifests)
    print(f"wrote {args.output}: {count} files of source store {store.root}")
    return 0


def _store_push(args: argparse.Namespace) -> int:
    store = SourceStore(args.store or default_store())
    index = args.index or store.root / ipfs.INDEX_FILE
    entries = ipfs.push_store(
        store,
        ipfs.node_for(args.ipfs),
        index,
        get_profile(args.cid_profile),
        list(args.names) or None,
        log=_log,
    )
    for entry in entries:
        print(
            f"pox/{entry['image']} recipe {entry['recipe_digest'][:16]}: {len(entry['blobs'])} "
            f"files, manifest {entry['manifest']['cid']} (profile {entry['profile']})"
        )
    print(f"recorded in {index}")
    return 0


def _store_fetch(args: argparse.Namespace) -> int:
    manifest = ipfs.fetch_store(
        args.name,
        ipfs.node_for(args.ipfs),
        args.output,
        index=args.index,
        digest=args.recipe_digest,
    )
    print(f"fetched the inputs of pox/{args.name} into {args.output} ({manifest.name})")
    print(f"rebuild: pox images build {args.name} --offline-from {args.output}")
    return 0


def _push(args: argparse.Namespace) -> int:
    index = args.index or ipfs.default_index()
    entry = ipfs.push_image(
        args.image, ipfs.node_for(args.ipfs), index, get_profile(args.cid_profile)
    )
    print(
        f"pushed pox/{entry['name']} measurement {entry['measurement']}: {entry['cid']} "
        f"(profile {entry['profile']}), recorded in {index}"
    )
    return 0


def _export(args: argparse.Namespace) -> int:
    meta = export_image(args.image, args.output, args.store)
    where = " and ".join(str(w) for w in (args.output, args.store) if w is not None)
    print(f"exported pox/{meta['name']} measurement {meta['measurement']} to {where}")
    return 0


def _import(args: argparse.Namespace) -> int:
    measurement = import_image_file(args.file, expect=args.expect, store=args.store)
    print(f"imported {args.file}: measurement {measurement} (recomputed, matches)")
    return 0


def _fetch(args: argparse.Namespace) -> int:
    if args.ipfs:
        if args.store is not None:
            raise UsageError("--from fetches from a store, --ipfs from a node: give one")
        cid = ipfs.fetch_image_ipfs(
            args.measurement,
            ipfs.node_for(args.ipfs),
            index=args.index,
            cid=args.cid,
            profile=get_profile(args.cid_profile),
        )
        print(f"fetched measurement {args.measurement} from IPFS {cid} (recomputed, matches)")
        return 0
    if args.cid or args.index:
        raise UsageError("--cid and --index need --ipfs URL")
    meta = fetch_image(args.measurement, args.store or default_store())
    print(f"fetched pox/{meta['name']} measurement {meta['measurement']}")
    return 0


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
