"""Enclave images: the deterministic tar, recipes and digests (units), and real offline builds.

The integration tests build the four images through the session cache (see `docker_images`),
check that each image's measurement is its only layer digest and that the job interpreter and
the language toolchain run inside it, and rebuild `pox/python` from scratch to show that the
same recipe and package versions give the same measurement.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from docker_images import REPO, images

from pox_executor.enclave import engine
from pox_executor.enclave.images import build, cache, recipes, tarball
from pox_executor.errors import UsageError

LANGUAGE_CHECKS = {
    "python": "python 3.11",
    "r": "Rscript (R) version 4.",
    "rust": "rustc 1.",
    "node": "v18.",
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
    assert recipes.recipe_names() == ["node", "python", "r", "rust"]
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
def test_all_four_images_build_offline_and_run_their_toolchains() -> None:
    built = images()
    assert sorted(built) == ["node", "python", "r", "rust"]
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
def test_building_twice_gives_the_same_measurement(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second build from an empty cache (as an auditor's machine has) matches the first."""
    first = images("python")["python"]
    monkeypatch.setenv("POX_IMAGE_CACHE", str(tmp_path / "auditor-cache"))
    rebuilt = build.build_image("python", force=True)
    assert rebuilt.cached is False and rebuilt.build_seconds is not None
    assert rebuilt.measurement == first.measurement
    expected = cache.read_expected(REPO / "enclave_images" / "python" / cache.EXPECTED_FILE)
    if expected != rebuilt.measurement:  # the Debian archive moved since it was written
        lock = (REPO / "enclave_images" / "python" / cache.PACKAGES_FILE).read_text().split()
        assert sorted(lock) != sorted(p for p in rebuilt.packages if p), (
            "same package versions but a different measurement: the build is not reproducible"
        )


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
