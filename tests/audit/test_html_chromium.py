"""The explorer page in real headless Chromium (Debian `chromium`, driven over the DevTools
protocol by tests/headless_chromium.py): it renders every job, the search finds a file by name,
clicks open the job's panel, simulated evidence is announced, a hostile file name stays text, and
the page makes no request beyond its own file. Saves a screenshot."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from ci_mode import missing_tool
from headless_chromium import Browser, Page, find_chromium
from recorded import DAG, Step, record_run

from pox_executor.audit.html import write_page
from pox_executor.audit.verify import verify_run

pytestmark = pytest.mark.integration

HOSTILE = "x</script><img src=x onerror=alert(1)>.txt"


@pytest.fixture(scope="module")
def page_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    quoted = shlex.quote(HOSTILE)
    steps = (
        *DAG,
        Step(4, "d", ("b.txt",), (HOSTILE,), f"mkdir -p $(dirname {quoted}) && cp b.txt {quoted}"),
    )
    run = record_run(tmp_path_factory.mktemp("html-chromium") / "w", steps)
    report = verify_run(run.bundle, allow_simulated=True)
    return write_page(run.bundle, report, run.bundle.workdir / "run.html")


@pytest.fixture(scope="module")
def page(page_file: Path) -> Page:
    executable = find_chromium()
    if executable is None:
        missing_tool("chromium is not installed (Debian package `chromium`)")
    with Browser(executable) as browser:
        loaded = browser.open(page_file.as_uri())
        loaded.wait_for("document.body && document.body.dataset.rendered === '1'")
        yield loaded


def _text(page: Page, selector: str) -> str:
    return str(page.evaluate(f"document.querySelector({json.dumps(selector)}).innerText"))


def test_renders_every_job_and_the_verdict(page: Page) -> None:
    assert _text(page, "#job-count") == "4"
    assert page.evaluate("document.getElementById('dag').dataset.drawnNodes") == "4"
    assert "verification: OK" in _text(page, "#verdict")
    assert "integrity only, evidence SIMULATED" in _text(page, "#verdict")


def test_simulated_evidence_is_announced(page: Page) -> None:
    assert page.evaluate("document.getElementById('simulated-warning').hidden") is False
    warning = _text(page, "#simulated-warning")
    assert "SIMULATED EVIDENCE" in warning and "NOT A TEE" in warning
    assert page.evaluate("getComputedStyle(document.getElementById('simulated-warning')).display")
    assert page.evaluate("document.body.classList.contains('simulated')")


def test_search_by_file_name_and_open_a_job(page: Page, tmp_path: Path) -> None:
    page.type_into("#search", "b.tx")
    page.wait_for("document.getElementById('search-results').dataset.hits === '1'")
    first = page.evaluate(
        "(() => { const r = document.querySelector('#search-results li').getBoundingClientRect();"
        " return [r.left + r.width / 2, r.top + r.height / 2]; })()"
    )
    assert _text(page, "#search-results li").startswith("b.txt")
    page.click(*first)
    page.wait_for("document.getElementById('job-panel').dataset.job === '3'")
    panel = _text(page, "#job-panel")
    assert "tr a-z A-Z < a.txt > b.txt" in panel  # the code
    assert "a.txt" in _text(page, "#job-inputs") and "b.txt" in _text(page, "#job-outputs")
    assert "sim-report" in panel and "SIMULATED" in panel and "verified" in panel
    shot = page.screenshot(tmp_path / "explorer.png")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


def test_click_on_a_node_opens_its_panel(page: Page) -> None:
    page.evaluate("poxExplorer.search(''); poxExplorer.fit()")
    page.wait_for("document.body.dataset.rendered === '1'")
    position = page.evaluate("poxExplorer.screenPosition(2)")
    page.click(position["x"], position["y"])
    page.wait_for("document.getElementById('job-panel').dataset.job === '4'")
    assert _text(page, "#job-panel h2") == "c"


def test_hostile_name_is_text_and_nothing_is_fetched(page: Page, page_file: Path) -> None:
    page.type_into("#search", "onerror")
    page.wait_for("document.getElementById('search-results').dataset.hits !== '0'")
    assert HOSTILE.split("/")[-1] in _text(page, "#search-results")
    assert page.evaluate("document.querySelectorAll('img').length") == 0
    assert not [e for e in page.browser.events if e["method"] == "Page.javascriptDialogOpening"]
    assert page.requested_urls() == [page_file.as_uri()]
    assert page.exceptions() == []
    assert page.violations() == []


def test_the_address_opens_a_job_and_a_search(page: Page, page_file: Path) -> None:
    tab = page.browser.open(page_file.as_uri() + "#q=c.txt&job=4")
    tab.wait_for("document.body && document.body.dataset.rendered === '1'")
    assert tab.evaluate("document.getElementById('search').value") == "c.txt"
    assert tab.evaluate("document.getElementById('search-results').dataset.hits") == "1"
    assert tab.evaluate("document.getElementById('job-panel').dataset.job") == "4"
    tab.call("Page.close")
