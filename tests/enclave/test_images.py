"""Enclave images: the deterministic tar, recipes and digests (units), and real offline builds.

The integration tests build the four images through the session cache (see `docker_images`),
check that each image's measurement is its only layer digest and that the job interpreter and
the language toolchain run inside it. The rebuild of `pox/python` from its source store alone
(same recipe and package versions, same measurement) is in tests/storage/test_images_ipfs.py:
the store goes through a real IPFS node on the way.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import lzma
import os
import shutil
import subprocess
import sys
import tarfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from docker_images import REPO, images, require_docker

from pox_executor.enclave import engine
from pox_executor.enclave.images import (
    archived,
    build,
    cache,
    debian,
    lockfile,
    recipes,
    relock,
    tarball,
)
from pox_executor.enclave.images import store as store_mod
from pox_executor.errors import UsageError, VerificationError

LANGUAGE_CHECKS = {
    "python": "python 3.11",
    "r": "Rscript (R) version 4.",
    "rust": "rustc 1.",
    "node": "v18.",
    "bio": "bcftools 1.",
}


def _tree(root: Path, order: list[str], mtime: int) -> None:
    for name in order:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"content of {name}\n")
        os.utime(path, (mtime, mtime))
    (root / "link").symlink_to("a/one.txt")
    os.link(root / "a" / "one.txt", root / "hard.txt")
    os.utime(root, (mtime, mtime))


def test_deterministic_tar_ignores_creation_order_and_times(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    _tree(first, ["a/one.txt", "b/two.txt", "c.txt"], mtime=1_800_000_000)
    _tree(second, ["c.txt", "b/two.txt", "a/one.txt"], mtime=1_900_000_000)
    d1 = tarball.write_deterministic_tar(first, tmp_path / "1.tar")
    d2 = tarball.write_deterministic_tar(second, tmp_path / "2.tar")
    assert d1 == d2
    with tarfile.open(tmp_path / "1.tar") as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names, key=lambda n: n.split("/"))
    assert all(m.mtime <= recipes.SOURCE_DATE_EPOCH for m in members)
    assert all(m.uname == "" and m.gname == "" for m in members)
    hard = [m for m in members if m.islnk()]
    assert [(m.name, m.linkname) for m in hard] == [("hard.txt", "a/one.txt")]


def test_deterministic_tar_changes_with_content(tmp_path: Path) -> None:
    root = tmp_path / "r"
    _tree(root, ["a/one.txt"], mtime=1)
    d1 = tarball.write_deterministic_tar(root, tmp_path / "1.tar")
    (root / "a" / "one.txt").write_text("other\n")
    assert tarball.write_deterministic_tar(root, tmp_path / "2.tar") != d1


def test_every_image_has_a_recipe_dockerfile_and_expected_measurement() -> None:
    assert recipes.recipe_names() == ["bio", "node", "python", "r", "rust"]
    for name in recipes.recipe_names():
        recipe = recipes.load_recipe(name)
        assert "python3" in recipe.packages and recipe.tag == f"pox/{name}:latest"
        folder = REPO / "enclave_images" / name
        assert (folder / "Dockerfile").is_file()
        expected = cache.read_expected(folder / cache.EXPECTED_FILE)
        assert expected is not None and len(expected) == 64
        assert (folder / cache.PACKAGES_FILE).read_text().strip()


def test_requirements_pin_snakemake_of_the_host_with_hashes() -> None:
    import snakemake

    lines = [
        line
        for line in recipes.requirements_file().read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert f"snakemake=={snakemake.__version__} --hash=sha256:" in "\n".join(lines)
    assert all("--hash=sha256:" in line for line in lines)


def test_recipe_digest_follows_the_recipe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / "enclave_images"
    shutil.copytree(REPO / "enclave_images", copy)
    monkeypatch.setenv("POX_ENCLAVE_IMAGES", str(copy))
    before = recipes.recipe_digest(recipes.load_recipe("node"))
    assert recipes.recipe_digest(recipes.load_recipe("node")) == before
    recipe = json.loads((copy / "node" / "recipe.json").read_text())
    recipe["packages"].append("jq")
    (copy / "node" / "recipe.json").write_text(json.dumps(recipe))
    assert recipes.recipe_digest(recipes.load_recipe("node")) != before
    recipe["packages"].remove("python3")
    (copy / "node" / "recipe.json").write_text(json.dumps(recipe))
    with pytest.raises(UsageError, match="python3"):
        recipes.load_recipe("node")
    with pytest.raises(UsageError, match="no enclave image recipe"):
        recipes.load_recipe("cobol")


def test_measurement_of_single_and_multi_layer_images() -> None:
    one = {"Id": "sha256:" + "c" * 64, "RootFS": {"Layers": ["sha256:" + "a" * 64]}}
    two = {"Id": "sha256:" + "c" * 64, "RootFS": {"Layers": ["sha256:1", "sha256:2"]}}
    assert engine.measurement_of(one) == "a" * 64
    assert engine.measurement_of(two) == "c" * 64


# -- real builds ---------------------------------------------------------------------------------


@pytest.mark.integration
def test_every_image_builds_offline_and_runs_its_toolchain() -> None:
    built = images()
    assert sorted(built) == recipes.recipe_names()
    for name, info in built.items():
        inspected = engine.inspect_image(info.tag)
        assert inspected is not None
        assert inspected["RootFS"]["Layers"] == [f"sha256:{info.measurement}"]
        labels = inspected["Config"]["Labels"]
        assert labels[build.LABEL_MEASUREMENT] == info.measurement
        assert inspected["Config"]["User"] == f"{engine.JOB_UID}:{engine.JOB_UID}"
        recipe = recipes.load_recipe(name)
        out = subprocess.run(
            ["docker", "run", "--rm", "--network", "none", info.tag, *recipe.check],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        assert LANGUAGE_CHECKS[name] in out.stdout + out.stderr
        snake = subprocess.run(
            [
                "docker",
                "run",
                "--rm",
                "--network",
                "none",
                info.tag,
                "python3",
                "-c",
                "import snakemake; print(snakemake.__version__)",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        import snakemake

        assert snake.stdout.strip() == snakemake.__version__, snake.stderr


@pytest.mark.integration
def test_cli_lists_the_images_with_measurements() -> None:
    built = images()
    out = subprocess.run(
        [sys.executable, "-m", "pox_executor.cli", "images", "list", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    listed = {i["name"]: i for i in json.loads(out.stdout)}
    for name, info in built.items():
        assert listed[name]["measurement"] == info.measurement
        assert listed[name]["image_digest"] == f"sha256:{info.measurement}"
        assert listed[name]["size_bytes"] > 10_000_000
    again = subprocess.run(
        [sys.executable, "-m", "pox_executor.cli", "images", "build", "python", "--quiet"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert again.returncode == 0, again.stderr
    assert built["python"].measurement in again.stdout


# -- locks, the source store, archived images ----------------------------------------------------


def _deb_line(name: str, version: str, data: bytes) -> str:
    return f"{name}={version} amd64 sha256:{hashlib.sha256(data).hexdigest()} {len(data)}"


def test_lock_lines_round_trip_and_a_bad_line_is_named(tmp_path: Path) -> None:
    text = "\n".join(
        ["# comment", _deb_line("libzstd1", "1.5.4+dfsg2-5", b"z"), "pypi:snakemake==9.27.1"]
    )
    lock = lockfile.parse_lock(text, "x.lock")
    assert [d.pin for d in lock.debs] == ["libzstd1=1.5.4+dfsg2-5"]
    assert lock.debs[0].filename == "libzstd1_1.5.4+dfsg2-5_amd64.deb"
    assert lockfile.parse_lock(lock.text("python"), "again") == lock
    with pytest.raises(UsageError, match=r"x\.lock:2: not a lock line"):
        lockfile.parse_lock("# c\nlibzstd1=1.5.4\n", "x.lock")
    with pytest.raises(UsageError, match=r"no packages\.lock"):
        lockfile.read_lock(tmp_path / "packages.lock", "python")


def test_every_committed_lock_parses_and_pins_every_file_by_digest() -> None:
    for name in recipes.recipe_names():
        lock = lockfile.read_lock(REPO / "enclave_images" / name / "packages.lock", name)
        assert len(lock.debs) > 50 and lock.pypi
        assert {"python3", "libc6", "dpkg"} <= {d.name for d in lock.debs}
        assert all(len(d.sha256) == 64 and d.size_bytes > 0 for d in lock.debs)


def _archive(root: Path, packages: dict[tuple[str, str], bytes]) -> str:
    """A Debian-layout archive on disk (Release, Packages.xz, pool): the test's own inputs."""
    stanzas = []
    for (name, version), data in sorted(packages.items()):
        filename = f"pool/main/{name}_{version}_amd64.deb"
        (root / filename).parent.mkdir(parents=True, exist_ok=True)
        (root / filename).write_bytes(data)
        stanzas.append(
            f"Package: {name}\nVersion: {version}\nArchitecture: amd64\nFilename: {filename}\n"
            f"Size: {len(data)}\nSHA256: {hashlib.sha256(data).hexdigest()}\n"
        )
    index = lzma.compress("\n".join(stanzas).encode())
    binary = root / "dists" / "bookworm" / "main" / "binary-amd64"
    binary.mkdir(parents=True)
    (binary / "Packages.xz").write_bytes(index)
    (root / "dists" / "bookworm" / "Release").write_text(
        f"Suite: bookworm\nSHA256:\n {hashlib.sha256(index).hexdigest()} {len(index)} "
        "main/binary-amd64/Packages.xz\n"
    )
    return f"deb file://{root} bookworm main"


def test_a_lock_the_archive_no_longer_satisfies_fails_the_build_naming_each_package(
    tmp_path: Path,
) -> None:
    """Debian moved libzstd1 and dropped libgone: `pox images build` says so and builds nothing."""
    mirror = _archive(
        tmp_path / "archive",
        {
            ("libzstd1", "1.5.4+dfsg2-5+deb12u1"): b"newer zstd",
            ("python3", "3.11.2-1+b1"): b"python3 deb",
        },
    )
    images_copy = tmp_path / "enclave_images"
    shutil.copytree(REPO / "enclave_images", images_copy)
    (images_copy / "python" / "packages.lock").write_text(
        "\n".join(
            [
                _deb_line("libzstd1", "1.5.4+dfsg2-5", b"older zstd"),
                _deb_line("python3", "3.11.2-1+b1", b"python3 deb"),
                _deb_line("libgone", "1.0-1", b"gone"),
            ]
        )
        + "\n"
    )
    env = {
        **os.environ,
        "POX_ENCLAVE_IMAGES": str(images_copy),
        "POX_IMAGE_CACHE": str(tmp_path / "cache"),
        "POX_SOURCE_STORE": str(tmp_path / "store"),
        "POX_DEBIAN_MIRRORS": mirror,
    }
    out = subprocess.run(
        [sys.executable, "-m", "pox_executor.cli", "images", "build", "python", "--quiet"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr
    assert "2 locked package version(s) cannot be had" in out.stderr
    assert "libzstd1=1.5.4+dfsg2-5 (amd64): the archive has 1.5.4+dfsg2-5+deb12u1" in out.stderr
    assert "libgone=1.0-1 (amd64): the archive has no version of it" in out.stderr
    assert f"source store {tmp_path / 'store'}" in out.stderr
    assert f"apt source `{mirror}`" in out.stderr
    assert str(images_copy / "python" / "packages.lock") in out.stderr
    # the one file the archive still has, with the locked digest, is archived by its SHA-256
    kept = store_mod.SourceStore(tmp_path / "store")
    assert kept.verified_blob(hashlib.sha256(b"python3 deb").hexdigest()) is not None
    assert not list((tmp_path / "cache").glob("python/*/rootfs.tar"))


def test_a_file_whose_digest_is_not_the_locked_one_is_refused(tmp_path: Path) -> None:
    mirror = _archive(tmp_path / "archive", {("python3", "3.11.2-1+b1"): b"rebuilt upstream"})
    locked = lockfile.parse_lock(_deb_line("python3", "3.11.2-1+b1", b"original"), "l").debs
    store = store_mod.SourceStore(tmp_path / "store")
    with pytest.raises(debian.LockUnsatisfiable, match="the archive's file has sha256"):
        debian.gather_debs(locked, store, [mirror], image="python", lock_path="l")
    with pytest.raises(debian.LockUnsatisfiable, match="not in the store"):
        debian.gather_debs(locked, store, None, image="python", lock_path="l")


def test_the_store_names_files_by_digest_and_detects_an_altered_blob(tmp_path: Path) -> None:
    source = tmp_path / "file.whl"
    source.write_bytes(b"wheel bytes")
    store = store_mod.SourceStore(tmp_path / "store")
    digest = store.put_file(source)
    assert digest == hashlib.sha256(b"wheel bytes").hexdigest()
    with pytest.raises(VerificationError, match="not the expected"):
        store.put_file(source, "0" * 64)
    store.write_manifest(
        "python",
        "d" * 64,
        {
            "inputs": [
                {"kind": "python", "filename": "file.whl", "sha256": digest, "size_bytes": 11}
            ]
        },
    )
    exported = tmp_path / "store.tar"
    assert store_mod.export_store(store, exported) == 2
    with store_mod.open_store(exported) as opened:
        assert opened.verified_blob(digest) is not None
        assert opened.read_manifest("python", "d" * 64) is not None
    store.blob_path(digest).chmod(0o644)
    store.blob_path(digest).write_bytes(b"other bytes")
    with pytest.raises(VerificationError, match="the store was altered"):
        store.verified_blob(digest)
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as tar:
        info = tarfile.TarInfo("../outside")
        tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(UsageError, match="unexpected member"), store_mod.open_store(evil):
        pass


def test_lock_summary_lists_each_changed_package_and_the_measurement() -> None:
    old = "libpam0g=1.5.2-6+deb12u2\nlibzstd1=1.5.4+dfsg2-5\nlibold=1\npypi:attrs==26.1.0\n"
    new = lockfile.ImageLock(
        tuple(
            lockfile.parse_lock(
                "\n".join(
                    [
                        _deb_line("libpam0g", "1.5.2-6+deb12u3", b"p"),
                        _deb_line("libzstd1", "1.5.4+dfsg2-5", b"z"),
                        _deb_line("libnew", "2", b"n"),
                    ]
                ),
                "new",
            ).debs
        ),
        ("attrs==26.1.0",),
    ).text("python")
    result = relock.LockResult(
        "python", relock.pins_of(old), relock.pins_of(new), "a" * 64, "b" * 64, ""
    )
    assert result.changed
    assert result.summary() == [
        "  + libnew 2",
        "  - libold 1",
        "  ~ libpam0g 1.5.2-6+deb12u2 -> 1.5.2-6+deb12u3",
        f"  measurement {'a' * 64} -> {'b' * 64}",
    ]


def test_a_container_names_its_committed_expected_measurement(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    committed = cache.read_expected(REPO / "enclave_images" / "r" / cache.EXPECTED_FILE)
    for container in ("pox/r", "docker://pox/r", "pox/r:latest", "docker://pox/r:abc"):
        assert cache.expected_for_container(container) == ("r", committed)
    for other in ("ubuntu:22.04", "pox/cobol", "docker://other/r", ""):
        assert cache.expected_for_container(other) is None


@pytest.fixture
def tiny_image(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A one-layer pox image made here (a few files), imported as `pox/<unique name>`."""
    require_docker()
    root = tmp_path / "tiny-root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "hello").write_text(f"tiny image of {tmp_path.name}\n")
    rootfs = tmp_path / "tiny.tar"
    measurement = tarball.write_deterministic_tar(root, rootfs)
    name = f"tiny-{uuid.uuid4().hex[:10]}"
    build.import_rootfs(name, None, rootfs, measurement, "0" * 64)
    yield name, measurement
    for tag in ("latest", measurement[:16]):
        engine.remove_image(f"pox/{name}:{tag}")


def _drop(name: str, measurement: str) -> None:
    for tag in ("latest", measurement[:16]):
        engine.remove_image(f"pox/{name}:{tag}")
    assert engine.inspect_image(f"pox/{name}:latest") is None


@pytest.mark.integration
def test_export_then_import_gives_back_the_same_measurement(
    tmp_path: Path, tiny_image: tuple[str, str]
) -> None:
    name, measurement = tiny_image
    exported = tmp_path / "tiny-export.tar"
    meta = archived.export_image(f"pox/{name}:latest", exported)
    assert meta["measurement"] == measurement and meta["name"] == name
    _drop(name, measurement)
    out = subprocess.run(
        [sys.executable, "-m", "pox_executor.cli", "images", "import", str(exported)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert measurement in out.stdout
    inspected = engine.inspect_image(f"pox/{name}:{measurement[:16]}")
    assert inspected is not None and engine.measurement_of(inspected) == measurement
    assert inspected["Config"]["Labels"][build.LABEL_MEASUREMENT] == measurement


@pytest.mark.integration
def test_a_tampered_export_is_refused_and_nothing_is_imported(
    tmp_path: Path, tiny_image: tuple[str, str]
) -> None:
    name, measurement = tiny_image
    exported = tmp_path / "tiny-export.tar"
    archived.export_image(f"pox/{name}:latest", exported)
    _drop(name, measurement)
    with tarfile.open(exported) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    altered = members["rootfs.tar"].replace(b"tiny image of", b"TINY image of")
    assert altered != members["rootfs.tar"]
    tampered = tmp_path / "tampered.tar"
    with tarfile.open(tampered, "w") as tar:
        for member_name, body in (
            ("pox-image.json", members["pox-image.json"]),
            ("rootfs.tar", altered),
        ):
            info = tarfile.TarInfo(member_name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    out = subprocess.run(
        [sys.executable, "-m", "pox_executor.cli", "images", "import", str(tampered)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1, out.stderr
    assert "refused" in out.stderr and measurement in out.stderr
    assert "Traceback" not in out.stderr
    assert engine.inspect_image(f"pox/{name}:latest") is None


@pytest.mark.integration
def test_fetch_by_measurement_from_a_store_and_a_wrong_blob_is_refused(
    tmp_path: Path, tiny_image: tuple[str, str]
) -> None:
    name, measurement = tiny_image
    store_dir = tmp_path / "image-store"
    archived.export_image(f"pox/{name}:latest", store=store_dir)
    _drop(name, measurement)
    meta = archived.fetch_image(measurement, store_dir)
    assert meta["name"] == name
    inspected = engine.inspect_image(f"pox/{name}:latest")
    assert inspected is not None and engine.measurement_of(inspected) == measurement
    _drop(name, measurement)
    blob = store_mod.SourceStore(store_dir).blob_path(measurement)
    blob.write_bytes(blob.read_bytes().replace(b"tiny image of", b"TINY image of"))
    with pytest.raises(VerificationError, match="the store was altered"):
        archived.fetch_image(measurement, store_dir)
    assert engine.inspect_image(f"pox/{name}:latest") is None
    with pytest.raises(UsageError, match="holds no image"):
        archived.fetch_image("f" * 64, store_dir)


def _record_in_container(workdir: Path, container: str) -> Path:
    """A one-job run recorded in-process whose rule names `container` (sim runtime)."""
    from recorded import Step, facts_of, new_recorder

    from pox_executor.enclave.runtime import JobSpec, OutputSpec

    workdir.mkdir(parents=True)
    (workdir / "Snakefile").write_text("# recorded in-process\n")
    (workdir / "data.txt").write_text("alpha\n")
    recorder = new_recorder(workdir)
    recorder.record_sources(["Snakefile"], {})
    step = Step(1, "a", ("data.txt",), ("a.txt",), "cat data.txt > a.txt")
    facts = dataclasses.replace(facts_of(step), container=container)
    spec = JobSpec(
        invocation_id="inv-1",
        command=step.command,
        workdir=workdir,
        outputs=(OutputSpec("a.txt"),),
        log_path=recorder.bundle.logs_dir / "inv-1.log",
    )
    outcome = recorder.runtime.run(spec, threading.Event())
    recorder.record(
        facts,
        outcome,
        input_digests=recorder.hash_inputs(facts),
        invocation_id="inv-1",
        job_log=spec.log_path,
    )
    recorder.finish("succeeded", [])
    return recorder.bundle.path


def test_verify_warns_when_a_pox_image_is_not_the_committed_expected_measurement(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pox_executor.audit.verify import verify_run
    from pox_executor.provenance.bundle import RunBundle

    images_copy = tmp_path / "enclave_images"
    shutil.copytree(REPO / "enclave_images", images_copy)
    monkeypatch.setenv("POX_ENCLAVE_IMAGES", str(images_copy))
    bundle = RunBundle.load(_record_in_container(tmp_path / "run", "docker://pox/python"))
    report = verify_run(bundle, allow_simulated=True)
    warned = [f for f in report.findings if f.check == "image-expected"]
    assert report.ok and len(warned) == 1, [f.render() for f in report.findings]
    ran_in = warned[0].message.split("measurement ")[1].split(",")[0]
    assert "enclave_images/python" in warned[0].message
    assert f"pox images fetch {ran_in}" in warned[0].message
    # the same run, verified with a checkout whose expected measurement is the one it ran in
    (images_copy / "python" / cache.EXPECTED_FILE).write_text(f"{ran_in}\n")
    again = verify_run(RunBundle.load(bundle.path), allow_simulated=True)
    assert not [f for f in again.findings if f.check == "image-expected"]


def test_an_offline_build_from_a_store_without_this_lock_says_what_it_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POX_IMAGE_CACHE", str(tmp_path / "cache"))
    other = store_mod.SourceStore(tmp_path / "store")
    other.write_manifest("python", "e" * 64, {"inputs": []})
    with pytest.raises(UsageError, match="holds no inputs of pox/python") as raised:
        build.build_image("python", offline_from=tmp_path / "store")
    assert f"python-{'e' * 64}" in str(raised.value.hint)
    with pytest.raises(UsageError, match="no source store at"):
        build.build_image("python", offline_from=tmp_path / "missing")


def _tiny_wheel(folder: Path) -> str:
    """A minimal pure-Python wheel made here; its hash-pinned requirement line."""
    import zipfile

    wheel = folder / "tinypkg-1.0-py3-none-any.whl"
    files = {
        "tinypkg/__init__.py": "VALUE = 1\n",
        "tinypkg-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: tinypkg\nVersion: 1.0\n",
        "tinypkg-1.0.dist-info/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: pox-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
        "tinypkg-1.0.dist-info/RECORD": "",
    }
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return f"tinypkg==1.0 --hash=sha256:{hashlib.sha256(wheel.read_bytes()).hexdigest()}\n"


_CONCURRENT_BUILD = """
import sys, time
from pathlib import Path
from pox_executor.enclave.images.wheels import ensure_wheels
go = Path(sys.argv[1])
while not go.exists():
    time.sleep(0.01)
target = ensure_wheels(lambda line: print(line, flush=True), find_links=Path(sys.argv[2]))
print("TARGET", target, sorted(p.name for p in (target / "wheels").iterdir()), flush=True)
"""


@pytest.mark.integration
def test_two_builds_at_once_fill_the_shared_wheel_cache_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two build processes reach the shared wheel step together: one fills the cache folder,
    the other waits for it and reuses it (before the lock, the second one deleted the folder
    under the first)."""
    copy = tmp_path / "enclave_images"
    shutil.copytree(REPO / "enclave_images", copy)
    links = tmp_path / "links"
    links.mkdir()
    (copy / "snakemake-requirements.txt").write_text(_tiny_wheel(links))
    (copy / "build-constraints.txt").write_text("")
    env = {
        **os.environ,
        "POX_ENCLAVE_IMAGES": str(copy),
        "POX_IMAGE_CACHE": str(tmp_path / "cache"),
        "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
    }
    go = tmp_path / "go"
    builds = [
        subprocess.Popen(
            [sys.executable, "-c", _CONCURRENT_BUILD, str(go), str(links)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    go.touch()
    outputs = [b.communicate(timeout=300) for b in builds]
    for build_process, (_, err) in zip(builds, outputs, strict=True):
        assert build_process.returncode == 0, err
    targets = {line for out, _ in outputs for line in out.splitlines() if line.startswith("TARGET")}
    assert len(targets) == 1 and "tinypkg-1.0-py3-none-any.whl" in targets.pop()
    downloads = [out.count(" download ") for out, _ in outputs]
    assert sorted(downloads) == [0, 1], outputs  # one filled the folder, the other reused it


def _engine_pid() -> int:
    """The pid of the engine process listening on the local socket (its peer credentials)."""
    import socket
    import struct

    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not host.startswith("unix://"):
        pytest.fail(f"this test stops the local engine process; DOCKER_HOST is {host}")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(host.removeprefix("unix://"))
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, _, _ = struct.unpack("3i", creds)
    return int(pid)


@pytest.mark.integration
def test_an_engine_that_answers_too_late_is_a_clear_error_and_the_wait_is_configurable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The real engine, stopped (SIGSTOP) for about a second: a call with POX_DOCKER_TIMEOUT=1
    gives up with an error saying so and how to allow more time; the default allows 300 s."""
    import signal

    require_docker()
    monkeypatch.delenv("POX_DOCKER_TIMEOUT", raising=False)
    assert engine.call_timeout_s() == 300.0
    monkeypatch.setenv("POX_DOCKER_TIMEOUT", "1")
    engine.inspect_image("pox/none-such:latest")  # connect while the engine answers
    pid = _engine_pid()
    os.kill(pid, signal.SIGSTOP)
    try:
        with pytest.raises(engine.EngineTimeout) as caught:
            engine.inspect_image("pox/none-such:latest")
    finally:
        os.kill(pid, signal.SIGCONT)
    text = caught.value.diagnostics()
    assert "did not answer within 1 s" in text and "POX_DOCKER_TIMEOUT" in text
    assert "pox/none-such:latest" in text
    monkeypatch.setenv("POX_DOCKER_TIMEOUT", "soon")
    out = subprocess.run(
        [sys.executable, "-m", "pox_executor.cli", "images", "list"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1 and "POX_DOCKER_TIMEOUT='soon'" in out.stderr
    assert "Traceback" not in out.stderr
