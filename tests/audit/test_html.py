"""`pox html` in-process: the page's data from a recorded run (jobs, edges, layout, files, code,
verification per job and for the run), escaping of hostile names, the CSP, and the CLI's
handling of bad output paths. The page in a real browser: test_html_chromium.py."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shlex
from pathlib import Path

import networkx as nx
import pytest
from recorded import DAG, RecordedRun, Step, record_run

from pox_executor.audit.html import page_data, render_page, write_page
from pox_executor.audit.layout import NODE_HEIGHT, layered_layout
from pox_executor.audit.verify import verify_run
from pox_executor.cli import main
from pox_executor.errors import UsageError


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> RecordedRun:
    return record_run(tmp_path_factory.mktemp("html") / "w")


def _embedded(page: str) -> dict:  # type: ignore[type-arg]
    match = re.search(r'<script type="application/json" id="pox-data">(.*?)</script>', page, re.S)
    assert match
    return json.loads(match.group(1))  # type: ignore[no-any-return]


def test_page_data_of_a_recorded_run(run: RecordedRun) -> None:
    report = verify_run(run.bundle, allow_simulated=True)
    data = page_data(run.bundle, report)
    jobs = data["jobs"]
    assert [j["rule"] for j in jobs] == ["a", "b", "c"]
    assert sorted(map(tuple, data["edges"])) == [(0, 1), (0, 2)]
    names = [f[0] for f in data["files"]]
    a, b = jobs[0], jobs[1]
    assert [names[f] for f, _, _ in b["inputs"]] == ["a.txt"] and b["inputs"][0][1] == 0
    assert [names[f] for f in a["outputs"]] == ["a.txt"]
    assert [names[f] for f, producer, origin in a["inputs"]] == ["data.txt"]
    assert a["inputs"][0][1:] == [-1, "source"]
    # a parent is drawn above its children
    assert b["y"] >= a["y"] + NODE_HEIGHT and jobs[2]["y"] == b["y"]
    assert a["code"][0]["command"] == "cat data.txt > a.txt"
    assert all(j["simulated"] and j["evidence"] == "sim-report" and j["verified"] for j in jobs)
    verification = data["verification"]
    assert verification["ok"] and verification["verdict"] == "OK" and verification["simulated"]
    assert data["run"]["status"] == "succeeded" and data["run"]["root"]


def test_strict_verdict_and_a_changed_file_land_on_the_page(tmp_path: Path) -> None:
    run = record_run(tmp_path / "w")
    (run.bundle.workdir / "b.txt").write_text("changed after the run\n")
    data = page_data(run.bundle, verify_run(run.bundle))
    verification = data["verification"]
    assert not verification["ok"] and verification["verdict"].startswith("FAILED")
    assert any(f["check"] == "simulated" for f in verification["findings"])
    by_rule = {j["rule"]: j for j in data["jobs"]}
    assert not by_rule["b"]["verified"]
    assert any("b.txt on disk has sha256" in f["message"] for f in by_rule["b"]["findings"])
    assert by_rule["a"]["verified"] and by_rule["c"]["verified"]


def test_hostile_names_stay_text(tmp_path: Path) -> None:
    hostile = "x</script><script>alert(1)</script><!--&amp;.txt"
    quoted = shlex.quote(hostile)
    command = f"mkdir -p $(dirname {quoted}) && cp a.txt {quoted}"
    steps = (*DAG, Step(4, "d", ("a.txt",), (hostile,), command))
    run = record_run(tmp_path / "w", steps)
    data = page_data(run.bundle, verify_run(run.bundle, allow_simulated=True))
    page = render_page(data)
    assert page.count("</script>") == 2  # the data element's and the explorer's own
    assert "<!--" not in page
    assert _embedded(page) == json.loads(json.dumps(data))
    assert hostile in [f[0] for f in data["files"]]


def test_the_csp_allows_only_the_inline_script_and_style(run: RecordedRun) -> None:
    page = render_page(page_data(run.bundle, verify_run(run.bundle, allow_simulated=True)))
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page)
    assert csp and "default-src 'none'" in csp.group(1)
    script = re.findall(r"<script>(.*?)</script>", page, re.S)
    style = re.findall(r"<style>(.*?)</style>", page, re.S)
    assert len(script) == 1 and len(style) == 1
    for text, directive in ((script[0], "script-src"), (style[0], "style-src")):
        digest = base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()
        assert f"{directive} 'sha256-{digest}'" in csp.group(1)
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)


def test_layout_wraps_wide_layers_and_keeps_parents_above() -> None:
    dag = nx.DiGraph()
    dag.add_edges_from(("root", f"leaf{i}") for i in range(100))
    order = ["root", *(f"leaf{i}" for i in range(100))]
    layout = layered_layout(dag, order, max_row=40)
    rows = {layout.positions[f"leaf{i}"][1] for i in range(100)}
    assert len(rows) == 3 and min(rows) > layout.positions["root"][1]
    assert layout.layers == 2
    assert len(set(layout.positions.values())) == 101


def test_write_page_never_overwrites_without_force(run: RecordedRun, tmp_path: Path) -> None:
    report = verify_run(run.bundle, allow_simulated=True)
    target = tmp_path / "page.html"
    target.write_text("keep me")
    with pytest.raises(UsageError, match="already exists"):
        write_page(run.bundle, report, target)
    assert target.read_text() == "keep me"
    with pytest.raises(UsageError, match="is a directory"):
        write_page(run.bundle, report, tmp_path)
    with pytest.raises(UsageError, match="no such directory"):
        write_page(run.bundle, report, tmp_path / "missing" / "page.html")
    write_page(run.bundle, report, target, force=True)
    assert target.read_text().startswith("<!DOCTYPE html>")


def test_cli_writes_the_page_and_reports_bad_paths(
    run: RecordedRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    workdir = str(run.bundle.workdir)
    page = tmp_path / "run.html"
    assert main(["html", "-C", workdir, "--allow-simulated", "--offline", "-o", str(page)]) == 0
    out = capsys.readouterr().out
    assert f"wrote {page}" in out and "verification OK" in out
    assert _embedded(page.read_text())["run"]["run_id"] == run.bundle.run_id
    assert main(["html", "-C", workdir, "--offline", "-o", str(page)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["html", "nope", "-C", workdir, "--offline", "-o", str(tmp_path / "x")]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_code_source_is_shown_only_while_it_matches_the_record(tmp_path: Path) -> None:
    from pox_executor.audit.html import MAX_SOURCE_BYTES, _source
    from pox_executor.primitives import sha256_bytes

    script = tmp_path / "step.py"
    script.write_text("print('hello')\n")
    digest = sha256_bytes(script.read_bytes())
    sources: dict[str, str] = {}
    assert _source(tmp_path, "step.py", digest, sources) == digest
    assert sources[digest] == "print('hello')\n"
    script.write_text("print('changed')\n")
    assert _source(tmp_path, "step.py", digest, {}) is None  # not what was recorded
    big = "#" * (MAX_SOURCE_BYTES + 1)
    script.write_text(big)
    assert _source(tmp_path, "step.py", sha256_bytes(big.encode()), {}) is None
    (tmp_path / "link.py").symlink_to(script)
    assert _source(tmp_path, "link.py", sha256_bytes(big.encode()), {}) is None
    assert _source(tmp_path, "pox:shell-command", digest, {}) is None
