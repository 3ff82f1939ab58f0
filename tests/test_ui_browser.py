"""The dashboard and the API docs in a real browser: Debian's headless Chromium driven by Playwright.

A live ``blockzoo serve`` (embedded: SQLite and in-process jobs, one torch thread) runs on a free
port with a fresh data folder. Every browser context is cut off from the network: any request
that is not for the server is aborted and recorded, and the run fails if there was one. The
fixtures do what a person does, once, in order of need: sign in, import a dataset, build a zoo,
run a search; each test then checks one behaviour on top of them. Every page is saved as a
screenshot: into the run's temporary folder, or into docs/ui/ (shown in docs/ui.md) with
``BLOCKZOO_UI_SCREENSHOTS=docs``, so that an ordinary test run leaves the checkout unchanged.

Chromium is Debian's package (``apt-get install chromium``; ``make test`` installs it when it
can); Playwright for Python drives it through ``executable_path`` and never downloads a browser.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest
from service_helpers import ROOT, free_port, service_env, stop_process, wait_until_healthy

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed "
                       "(`apt-get install chromium`; `make test` installs it when it runs as root)"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[test]')")
expect = sync_api.expect

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-dev-shm-usage"]  # containers often have a small /dev/shm
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
SCREENSHOTS_TO_DOCS = os.environ.get("BLOCKZOO_UI_SCREENSHOTS") == "docs"
SCREENSHOTS = ROOT / "docs" / "ui" if SCREENSHOTS_TO_DOCS else Path(tempfile.gettempdir()) / "blockzoo-ui-screenshots"
JOB_TIMEOUT_MS = 240_000  # a job on a loaded 2-core machine; each finishes in seconds when idle

# The smallest recipe that still trains a reference and distils real blocks (as the service tests).
DATASET_IMAGES = 600
SEARCH_BUDGET_MACS = 800_000  # above the smallest mbv3-tiny architecture at 1 channel (403,552)


@dataclass
class Served:
    url: str
    key: str
    log: Path


@dataclass
class Scenario:
    """What the fixtures made through the dashboard, for the tests that build on it."""

    dataset_id: str = ""
    zoo_id: str = ""
    search_id: str = ""
    latency_table_id: str = ""
    blocked: list[str] = field(default_factory=list)  # requests that tried to leave the machine
    requests: list[str] = field(default_factory=list)  # every path the dashboard tab asked the server for


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    data = tmp_path_factory.mktemp("ui")
    port = free_port()
    log = data / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--data-dir", str(data / "data")],
            cwd=ROOT, env=service_env(torch_threads="1"), stdout=out, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, proc, log)
        key = next(line.strip() for line in log.read_text().splitlines() if line.strip().startswith("bz_"))
        yield Served(url, key, log)
    finally:
        stop_process(proc)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    playwright = sync_api.sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
    finally:
        playwright.stop()


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return Scenario()


def offline_context(browser, served: Served, blocked: list[str]):
    """A browser context whose only reachable host is the server: the network is unplugged.

    Every request for another host is aborted and appended to ``blocked``.
    """
    context = browser.new_context(viewport=DESKTOP, accept_downloads=True)
    server_host = urlsplit(served.url).netloc

    def only_the_server(route) -> None:
        if urlsplit(route.request.url).netloc == server_host or route.request.url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort("internetdisconnected")

    context.route("**/*", only_the_server)
    return context


def screenshot(page, name: str, full_page: bool = True, mask: list | None = None) -> None:
    """SCREENSHOTS/<name>.png (the full page, or the viewport), in a 256-colour palette to stay small in git;
    ``mask``: locators painted over (secrets)."""
    from PIL import Image

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page, animations="disabled", caret="hide", mask=mask or [],
                    mask_color="#c5d0db")
    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)


@pytest.fixture(scope="module")
def page(browser, served: Served, scenario: Scenario) -> Iterator[object]:
    """One signed-in tab, shared by the dashboard tests (the key lives in its sessionStorage)."""
    context = offline_context(browser, served, scenario.blocked)
    tab = context.new_page()
    tab.set_default_timeout(30_000)
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    tab.on("request", lambda request: scenario.requests.append(urlsplit(request.url).path))
    tab.goto(f"{served.url}/")
    expect(tab).to_have_url(re.compile(r"/ui/"))
    screenshot(tab, "sign-in")
    tab.fill("#api-key", "bz_not-a-key")
    tab.get_by_role("button", name="Sign in").click()
    expect(tab.locator(".signin .error-box")).to_contain_text("not accepted")
    tab.fill("#api-key", served.key)
    tab.get_by_role("button", name="Sign in").click()
    expect(tab.get_by_role("heading", name="Datasets", exact=True)).to_be_visible()
    yield tab
    context.close()
    assert not errors, f"uncaught errors in the page: {errors}"
    assert scenario.blocked == [], "the dashboard tried to reach the network"


def go(page, served: Served, fragment: str) -> None:
    page.goto(f"{served.url}/ui/#{fragment}")


def api(served: Served, method: str, path: str, **kwargs) -> httpx.Response:
    """The API itself, with the test's key (for the facts the pages are checked against)."""
    response = httpx.request(method, f"{served.url}{path}", headers={"Authorization": f"Bearer {served.key}"},
                             timeout=60, **kwargs)
    response.raise_for_status()
    return response


def ms_text(value: float) -> str:
    """Milliseconds as the dashboard writes them (format.js `ms`)."""
    return f"{value:.2f} ms" if value < 10 else f"{value:.1f} ms"


def accept_next_dialog(page) -> None:
    """The next window.confirm is answered OK (Playwright dismisses dialogs otherwise)."""
    page.once("dialog", lambda dialog: dialog.accept())


@pytest.fixture(scope="module")
def dataset(page, served: Served, scenario: Scenario) -> str:
    """The synthetic built-in dataset, imported with the form."""
    go(page, served, "/datasets")
    expect(page.locator(".empty")).to_contain_text("No datasets yet")
    form = page.locator("form[data-form=builtin]")
    form.locator("select[name=name]").select_option("synthetic")
    form.locator("input[name=num_images]").fill(str(DATASET_IMAGES))
    form.get_by_role("button", name="Import").click()
    link = page.locator("table a", has_text="synthetic")
    expect(link).to_be_visible()
    scenario.dataset_id = link.get_attribute("href").rsplit("/", 1)[1]
    return scenario.dataset_id


@pytest.fixture(scope="module")
def zoo(page, served: Served, scenario: Scenario, dataset: str) -> str:
    """A lazy mbv3-tiny zoo, created with the form (its small defaults) and watched to the end.

    The build is followed through the job's event stream: its phase and ETA show while it runs,
    the stream carries every change, and the page never polls the job.
    """
    go(page, served, f"/zoos?dataset={dataset}")
    # Every distinct value the build's progress bar shows, recorded in the page as it changes.
    page.evaluate("""() => {
        window.seenProgress = new Set();
        new MutationObserver(() => {
            const bar = document.querySelector('.job-panel [role=progressbar]');
            if (bar) window.seenProgress.add(bar.getAttribute('aria-valuenow'));
        }).observe(document.body, {subtree: true, childList: true, attributes: true});
    }""")
    page.get_by_role("button", name="Create zoo").click()
    expect(page).to_have_url(re.compile(r"#/zoos/zoo_\w+$"))
    scenario.zoo_id = page.url.rsplit("/", 1)[1]
    panel = page.locator(".job-panel")
    job_id = panel.get_attribute("data-job")
    expect(panel).to_have_attribute("data-transport", "stream")
    expect(panel.locator(".job-phase")).to_contain_text(" left", timeout=JOB_TIMEOUT_MS)  # "training · about 4 s left"
    screenshot(page, "zoo-building")
    expect(page.locator(".job-panel .progress-text")).to_have_text("100 %", timeout=JOB_TIMEOUT_MS)
    expect(page.locator(".page-header .badge")).to_have_text("ready")
    seen = page.evaluate("[...window.seenProgress]")
    assert len(seen) >= 3 and "100" in seen, seen  # steps on the way to 100 %, ...
    assert scenario.requests.count(f"/v1/jobs/{job_id}/events") == 1  # ... all through one event stream,
    assert f"/v1/jobs/{job_id}" not in scenario.requests, "the page polled the job"  # never by polling
    return scenario.zoo_id


@pytest.fixture(scope="module")
def search(page, served: Served, scenario: Scenario, zoo: str) -> str:
    """A small evolution search under a MACs budget, followed until its plot appears."""
    go(page, served, f"/searches?zoo={zoo}")
    form = page.locator("form[data-form=search]")
    form.locator("input[name=max_macs]").fill(str(SEARCH_BUDGET_MACS))
    form.locator("input[name=population]").fill("6")
    form.locator("input[name=generations]").fill("1")
    form.get_by_role("button", name="Start search").click()
    expect(page).to_have_url(re.compile(r"#/searches/srch_\w+$"))
    scenario.search_id = page.url.rsplit("/", 1)[1]
    expect(page.locator("svg.pareto")).to_be_visible(timeout=JOB_TIMEOUT_MS)
    return scenario.search_id


def test_sign_in_keeps_the_key_out_of_urls_and_logs(page, served: Served) -> None:
    assert served.key not in page.url
    assert page.evaluate("sessionStorage.getItem('blockzoo.apiKey')") == served.key
    assert served.log.read_text().count(served.key) == 1  # the first start's banner, not the access log


def test_a_builtin_import_lists_the_dataset_with_class_counts_and_samples(page, served: Served, dataset: str) -> None:
    go(page, served, "/datasets")
    expect(page.locator("table")).to_contain_text(f"{DATASET_IMAGES - DATASET_IMAGES // 6} / {DATASET_IMAGES // 6}")
    screenshot(page, "datasets")
    page.locator("table a", has_text="synthetic").click()
    expect(page.locator("svg.chart .bar-group")).to_have_count(10)
    sample = page.locator(".sample-grid img")
    expect(sample).to_be_visible()
    page.wait_for_function("document.querySelector('.sample-grid img').naturalWidth > 0")
    assert sample.evaluate("img => [img.naturalWidth, img.naturalHeight]") == [8 * 34 - 2, 10 * 34 - 2]
    screenshot(page, "dataset")


def test_an_upload_shows_its_progress_and_lands_in_the_list(page, served: Served, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "little-shapes.npz"
    np.savez(path, x=rng.integers(0, 256, size=(60, 8, 8), dtype=np.uint8), y=np.arange(60) % 3)
    go(page, served, "/datasets")
    form = page.locator("form[data-form=upload]")
    form.locator("input[type=file]").set_input_files(str(path))
    form.get_by_role("button", name="Upload").click()
    expect(page.locator("table a", has_text="little-shapes")).to_be_visible()


def test_a_zoo_build_is_followed_to_100_percent(page, served: Served, zoo: str) -> None:
    go(page, served, f"/zoos/{zoo}")
    expect(page.locator(".job-panel .progress-text")).to_have_text("100 %")
    expect(page.locator(".facts")).to_contain_text("Reference test accuracy")
    screenshot(page, "zoo")
    go(page, served, "/zoos")
    expect(page.locator("table")).to_contain_text(zoo)
    screenshot(page, "zoos")


def test_the_builder_shows_live_cost_and_scores_architectures(page, served: Served, zoo: str) -> None:
    go(page, served, f"/builder?zoo={zoo}")
    macs = page.locator("[data-stat=macs]")
    expect(macs).to_have_text("403,552")  # the smallest architecture, from /v1/cost
    page.locator(".stage[data-stage='2'] .segmented button", has_text="2").click()
    page.locator(".stage[data-stage='2'] select").nth(1).select_option("6")
    expect(macs).not_to_have_text("403,552")
    arch_id = page.locator("input[name=arch_id]").input_value()
    assert arch_id.startswith("d11211-e2.2.26.")
    page.get_by_role("button", name="Score").click()
    expect(page.locator(".score-result [data-stat=proxy]")).to_contain_text("%", timeout=JOB_TIMEOUT_MS)
    page.get_by_role("button", name="Smallest").click()
    page.get_by_role("button", name="Score").click()
    compare = page.locator(".card", has=page.get_by_role("heading", name="Compare")).locator("tbody tr")
    expect(compare).to_have_count(2, timeout=JOB_TIMEOUT_MS)
    expect(compare.first).to_contain_text("d11111-e2.2.2.2.2")
    compare.get_by_role("link", name=arch_id).click()  # back to the first one, from the comparison
    expect(page.locator("input[name=arch_id]")).to_have_value(arch_id)
    expect(page.locator(f".score-result[data-arch='{arch_id}'] [data-stat=proxy]")).to_contain_text("%")
    expect(macs).to_have_text(re.compile(r"\d"))
    screenshot(page, "builder")


def test_bad_input_shows_the_servers_message(page, served: Served, zoo: str) -> None:
    go(page, served, f"/builder?zoo={zoo}")
    page.locator("input[name=arch_id]").fill("d9-e2")
    page.get_by_role("button", name="Load").click()
    expect(page.locator(".error-box")).to_contain_text("has 5 stages")

    go(page, served, f"/searches?zoo={zoo}")
    form = page.locator("form[data-form=search]")
    form.locator("input[name=max_macs]").fill("1000")
    form.get_by_role("button", name="Start search").click()
    expect(form.locator(".error-box")).to_contain_text("infeasible budget")
    expect(form.locator(".error-box")).to_contain_text("smallest achievable macs")
    screenshot(page, "search-error")


def test_the_pareto_plot_explains_a_point_on_hover_and_opens_it(page, served: Served, search: str) -> None:
    evaluated = httpx.get(f"{served.url}/v1/searches/{search}", headers={"Authorization": f"Bearer {served.key}"},
                          timeout=30).json()
    assert len(evaluated["candidates"]) == evaluated["evaluated"]
    go(page, served, f"/searches/{search}")
    points = page.locator("svg.pareto g.point")
    expect(points).to_have_count(evaluated["evaluated"])
    expect(page.locator("svg.pareto .budget")).to_have_count(1)
    best = evaluated["picks"][0]
    star = page.locator(f"svg.pareto g.point.pick[data-arch='{best['arch_id']}']")
    star.hover()
    tooltip = page.locator(".tooltip")
    expect(tooltip).to_be_visible()
    expect(tooltip).to_contain_text(best["arch_id"])
    expect(tooltip).to_contain_text(f"MACs: {best['macs']:,}")
    expect(tooltip).to_contain_text(f"params: {best['params']:,}")
    expect(tooltip).to_contain_text("pick #1")
    screenshot(page, "search")
    page.set_viewport_size(PHONE)
    for link in page.locator("#nav a").all():  # every page reachable without a hidden sideways scroll
        box = link.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], link.inner_text()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(page, "search-phone")
    page.set_viewport_size(DESKTOP)
    go(page, served, "/searches")
    expect(page.locator("table")).to_contain_text(search)
    screenshot(page, "searches")

    go(page, served, f"/searches/{search}")
    page.locator(f"svg.pareto g.point.pick[data-arch='{best['arch_id']}']").click()
    expect(page).to_have_url(re.compile(rf"#/builder\?zoo=\w+&arch={re.escape(best['arch_id'])}$"))
    expect(page.locator("input[name=arch_id]")).to_have_value(best["arch_id"])


def test_a_pick_downloads_its_weights_and_fine_tunes(page, served: Served, scenario: Scenario, search: str) -> None:
    go(page, served, f"/searches/{search}")
    picks = page.locator(".card", has=page.get_by_role("heading", name="Picks (best first)"))
    first = picks.locator("tbody tr").first
    with page.expect_download(timeout=JOB_TIMEOUT_MS) as download:
        first.get_by_role("button", name="Download weights").click()
    assert download.value.suggested_filename.endswith(".safetensors")
    first.get_by_role("button", name="Fine-tune").click()
    form = page.locator("form[data-form=finetune]")
    form.locator("input[name=epochs]").fill("0.2")
    # Where the event stream cannot be had (a proxy that buffers, a dropped connection), the job
    # panel falls back to polling the job and still follows it to the end.
    page.route("**/v1/jobs/*/events", lambda route: route.abort("connectionreset"))
    form.get_by_role("button", name="Start fine-tune").click()
    expect(page).to_have_url(re.compile(r"#/finetunes/ft_\w+$"))
    expect(page.locator(".job-panel")).to_have_attribute("data-transport", "polling")
    expect(page.locator(".job-panel .badge")).to_have_text("succeeded", timeout=JOB_TIMEOUT_MS)
    page.unroute("**/v1/jobs/*/events")
    assert f"/v1/jobs/{page.locator('.job-panel').get_attribute('data-job')}" in scenario.requests
    expect(page.locator(".facts")).to_contain_text("after")
    with page.expect_download() as download:
        page.locator(".facts").get_by_role("button", name="Download weights").click()
    assert download.value.suggested_filename.endswith(".safetensors")
    screenshot(page, "finetune")


def test_a_running_job_is_cancelled_from_the_jobs_page(page, served: Served, search: str) -> None:
    """A long fine-tune (many epochs): cancelled while it runs, it ends `cancelled`, said in words."""
    best = httpx.get(f"{served.url}/v1/searches/{search}", headers={"Authorization": f"Bearer {served.key}"},
                     timeout=30).json()["picks"][0]
    go(page, served, f"/searches/{search}")
    page.locator(".card", has=page.get_by_role("heading", name="Picks (best first)")).locator("tbody tr").first \
        .get_by_role("button", name="Fine-tune").click()
    form = page.locator("form[data-form=finetune]")
    form.locator("input[name=epochs]").fill("300")
    form.get_by_role("button", name="Start fine-tune").click()
    expect(page).to_have_url(re.compile(r"#/finetunes/ft_\w+$"))
    finetune_id = page.url.rsplit("/", 1)[1]
    job_id = page.locator(".job-panel").get_attribute("data-job")
    go(page, served, "/jobs")
    row = page.locator("tr.job-row", has_text=job_id)
    expect(row.locator(".badge")).to_have_text("running", timeout=JOB_TIMEOUT_MS)
    row.get_by_role("button", name="Cancel").click()
    expect(row.locator(".badge")).to_have_text(re.compile("cancelling|cancelled"))
    expect(row.locator(".badge")).to_have_text("cancelled", timeout=JOB_TIMEOUT_MS)
    screenshot(page, "jobs")
    go(page, served, "/finetunes")
    expect(page.locator("table")).to_contain_text(finetune_id)
    expect(page.locator("table")).to_contain_text(best["arch_id"])
    screenshot(page, "finetunes")


def test_a_validation_reaches_its_verdict_with_signals_and_plot(page, served: Served, zoo: str) -> None:
    """k=4 architectures x 2 seeds, half an epoch each (the form's defaults): followed live to the report."""
    go(page, served, f"/zoos/{zoo}")
    page.get_by_role("link", name="Validate the scores").click()
    form = page.locator("form[data-form=validation]")
    expect(form.locator("select[name=zoo_id]")).to_have_value(zoo)
    assert [form.locator(f"input[name={name}]").input_value() for name in ("k", "seeds", "epochs")] == ["4", "2", "0.5"]
    form.get_by_role("button", name="Start validation").click()
    expect(page).to_have_url(re.compile(r"#/validations/val_\w+$"))
    validation_id = page.url.rsplit("/", 1)[1]
    expect(page.locator(".validation-count")).to_contain_text("/ 8 trainings done")
    expect(page.locator("tr.training-row")).to_have_count(8)
    verdict = page.locator(".verdict")
    expect(verdict).to_contain_text("Over 4 architectures", timeout=JOB_TIMEOUT_MS)
    expect(page.locator(".validation-count")).to_contain_text("8 / 8 trainings done")
    report = api(served, "GET", f"/v1/validations/{validation_id}").json()["report"]
    rows = page.locator("tr.signal-row")
    expect(rows).to_have_count(len(report["signals"]))
    proxy, stats = page.locator("tr.signal-row.primary"), report["signals"]["proxy_accuracy"]
    expect(proxy).to_contain_text("proxy accuracy (primary)")
    expect(proxy).to_contain_text("too few to tell")  # 4 architectures: no interval is claimed
    for target in ("accuracy", "nll"):  # rho against accuracy and against -NLL
        assert stats[target]["spearman_ci"] is None
        expect(proxy).to_contain_text(f"{stats[target]['spearman']:+.2f}".replace("-", "\u2212"))
    expect(page.locator(".card", has=page.get_by_role("heading", name=re.compile("^Ceiling")))).to_contain_text("Two seeds agree at")
    plot = page.locator(".validation-plot img")
    expect(plot).to_be_visible()
    page.wait_for_function("document.querySelector('.validation-plot img').naturalWidth > 0")
    expect(page.locator("tr.training-row .badge", has_text="done")).to_have_count(8)
    screenshot(page, "validation")

    # A second one (other architectures, longer trainings: nothing cached), cancelled at once from
    # its page, then deleted; the list keeps the first.
    go(page, served, f"/validations?zoo={zoo}")
    form = page.locator("form[data-form=validation]")
    form.locator("input[name=arch_seed]").fill("1")
    form.locator("input[name=epochs]").fill("50")
    form.get_by_role("button", name="Start validation").click()
    expect(page).to_have_url(re.compile(r"#/validations/val_\w+$"))
    second = page.url.rsplit("/", 1)[1]
    page.locator("[data-action=cancel]").click()
    expect(page.locator(".page-header .badge")).to_have_text("cancelled", timeout=JOB_TIMEOUT_MS)
    accept_next_dialog(page)
    page.locator("[data-action=delete]").click()
    expect(page).to_have_url(re.compile(rf"#/validations\?zoo={zoo}$"))
    table = page.locator(".card", has=page.get_by_role("heading", name=f"Validations of {zoo}"))
    expect(table).to_contain_text(validation_id)
    expect(table).not_to_contain_text(second)
    screenshot(page, "validations")


@pytest.fixture(scope="module")
def latency_table(page, served: Served, scenario: Scenario, zoo: str) -> str:
    """The zoo's shapes measured by the server's worker: 3,900 blocks, quick timing, 4 calibration networks."""
    go(page, served, f"/latency-tables?zoo={zoo}")
    expect(page.locator(".empty")).to_contain_text("No latency tables yet")
    form = page.locator("form[data-form=latency-measure]")
    expect(form.locator("select[name=space]")).to_have_value("mbv3-tiny")
    expect(form.locator("input[name=in_channels]")).to_have_value("1")  # the zoo's, filled in
    form.locator("input[name=architectures]").fill("4")
    form.locator("select[name=timing]").select_option("quick")
    form.get_by_role("button", name="Measure on the server").click()
    expect(page).to_have_url(re.compile(r"#/latency-tables/lat_\w+$"))
    scenario.latency_table_id = page.url.rsplit("/", 1)[1]
    expect(page.locator(".page-header .badge")).to_have_text("ready", timeout=JOB_TIMEOUT_MS)
    return scenario.latency_table_id


def test_a_latency_table_is_measured_on_the_server_and_another_uploaded(page, served: Served, latency_table: str,
                                                                         tmp_path: Path) -> None:
    go(page, served, f"/latency-tables/{latency_table}")
    facts = page.locator(".facts")
    expect(facts).to_contain_text("measured by the server")
    expect(facts).to_contain_text("1 input channel at 16×16 px, 10 classes, batch 1")
    expect(facts).to_contain_text("3,900 blocks")
    expect(facts).to_contain_text("from 4 networks (coverage 95 %)")
    expect(page.locator(".card", has=page.get_by_role("heading", name="Calibration networks")).locator("tbody tr")).to_have_count(4)
    screenshot(page, "latency-table")

    # The same table as a file, uploaded with the form (as one measured on a device would be), then deleted.
    path = tmp_path / "device-b1.json"
    path.write_text(json.dumps(api(served, "GET", f"/v1/latency-tables/{latency_table}",
                                   params={"include_table": "true"}).json()["table"]))
    go(page, served, "/latency-tables")
    form = page.locator("form[data-form=latency-upload]")
    form.locator("input[type=file]").set_input_files(str(path))
    form.locator("input[name=name]").fill("my device b1")
    form.get_by_role("button", name="Upload").click()
    expect(page.get_by_role("heading", name="my device b1")).to_be_visible()
    expect(page.locator(".facts")).to_contain_text("uploaded")
    go(page, served, "/latency-tables")
    expect(page.locator("table tbody tr")).to_have_count(2)
    screenshot(page, "latency-tables")
    page.locator("table a", has_text="my device b1").click()
    accept_next_dialog(page)
    page.locator("[data-action=delete]").click()
    expect(page).to_have_url(re.compile(r"#/latency-tables$"))
    expect(page.locator("table tbody tr")).to_have_count(1)


def test_a_search_under_a_latency_budget_plots_latency(page, served: Served, zoo: str, latency_table: str) -> None:
    row = api(served, "GET", f"/v1/latency-tables/{latency_table}").json()
    budget = round((row["fastest_ms"] + row["largest_ms"]) / 2, 2)
    go(page, served, f"/latency-tables/{latency_table}")
    page.get_by_role("link", name="Search under a latency budget").click()
    form = page.locator("form[data-form=search]")
    expect(form.locator("select[name=latency_table_id]")).to_have_value(latency_table)
    expect(form).to_contain_text("Fastest achievable")
    form.locator("input[name=max_latency_ms]").fill(str(budget))
    form.locator("input[name=population]").fill("6")
    form.locator("input[name=generations]").fill("1")
    form.get_by_role("button", name="Start search").click()
    expect(page).to_have_url(re.compile(r"#/searches/srch_\w+$"))
    plot = page.locator("svg.pareto")
    expect(plot).to_be_visible(timeout=JOB_TIMEOUT_MS)
    expect(plot.locator(".axis-label").first).to_have_text("predicted latency (ms)")
    expect(plot.locator(".budget-label")).to_have_text(f"budget {ms_text(budget)}")
    expect(page.locator(".segmented [data-axis=latency_ms]")).to_have_attribute("aria-pressed", "true")
    search = api(served, "GET", f"/v1/searches/{page.url.rsplit('/', 1)[1]}").json()
    assert search["pareto_cost"] == "latency_ms" and all(c["latency_ms"] <= budget for c in search["candidates"])
    best = search["picks"][0]
    page.locator(f"svg.pareto g.point.pick[data-arch='{best['arch_id']}']").hover()
    expect(page.locator(".tooltip")).to_contain_text(f"latency: {ms_text(best['latency_ms'])}")
    expect(page.locator(".facts")).to_contain_text(f"≤ {ms_text(budget)}")
    screenshot(page, "search-latency")
    page.locator(".segmented [data-axis=macs]").click()  # the same candidates against MACs
    expect(plot.locator(".axis-label").first).to_have_text("MACs per image")


def test_the_builder_predicts_latency_with_a_table(page, served: Served, zoo: str, latency_table: str) -> None:
    go(page, served, f"/builder?zoo={zoo}")
    page.get_by_label("Latency table").select_option(latency_table)
    predicted = page.locator("[data-stat=latency]")
    expect(predicted).to_have_text(re.compile(r"^\d+\.\d\d? ms$"))
    before = predicted.text_content()
    page.locator(".stage[data-stage='4'] .segmented button", has_text="3").click()  # a deeper last stage is slower
    expect(predicted).not_to_have_text(before)
    page.get_by_role("button", name="Score").click()  # the server's prediction agrees with the page's
    expect(page.locator("[data-stat=scored-latency]")).to_have_text(predicted.text_content(), timeout=JOB_TIMEOUT_MS)
    assert "latency=" in page.url
    screenshot(page, "builder-latency")


def test_a_cancelled_zoo_build_resumes(page, served: Served, dataset: str) -> None:
    """A build cancelled while it trains leaves its zoo failed; Resume build starts a new build job."""
    go(page, served, f"/zoos?dataset={dataset}")
    form = page.locator("form[data-form=zoo]")
    form.locator("input[name='ref.epochs']").fill("20")
    form.get_by_role("button", name="Create zoo").click()
    expect(page).to_have_url(re.compile(r"#/zoos/zoo_\w+$"))
    panel = page.locator(".job-panel")
    first_job = panel.get_attribute("data-job")
    expect(panel.locator(".badge")).to_have_text("running", timeout=JOB_TIMEOUT_MS)
    panel.get_by_role("button", name="Cancel").click()
    expect(panel.locator(".badge")).to_have_text("cancelled", timeout=JOB_TIMEOUT_MS)
    expect(page.locator(".page-header .badge")).to_have_text("failed")
    resume = page.get_by_role("button", name="Resume build")
    expect(resume).to_be_visible()
    screenshot(page, "zoo-resume")
    resume.click()
    expect(page.locator(".page-header .badge")).to_have_text("building")
    expect(panel).not_to_have_attribute("data-job", first_job)
    expect(panel.locator(".badge")).to_have_text("running", timeout=JOB_TIMEOUT_MS)
    panel.get_by_role("button", name="Cancel").click()  # no need to train it to the end here
    expect(page.locator(".page-header .badge")).to_have_text("failed", timeout=JOB_TIMEOUT_MS)


def test_keys_are_shown_once_and_revoking_the_tabs_own_key_signs_it_out(browser, page, served: Served,
                                                                        scenario: Scenario) -> None:
    go(page, served, "/keys")
    rows = page.locator("tr.key-row")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("this tab")
    form = page.locator("form[data-form=key]")
    form.locator("input[name=name]").fill("second tab")
    form.get_by_role("button", name="Create key").click()
    shown = page.get_by_label("The new API key")
    expect(shown).to_have_value(re.compile(r"^bz_"))
    key = shown.input_value()
    expect(rows).to_have_count(2)
    screenshot(page, "keys", mask=[shown])

    # Another tab signs in with the new key and revokes it: that tab is signed out, with a message.
    context = offline_context(browser, served, scenario.blocked)
    other = context.new_page()
    errors: list[str] = []
    other.on("pageerror", lambda error: errors.append(str(error)))
    other.goto(f"{served.url}/ui/#/keys")
    other.fill("#api-key", key)
    other.get_by_role("button", name="Sign in").click()
    own = other.locator("tr.key-row", has_text="this tab")
    expect(own).to_contain_text("second tab")
    accept_next_dialog(other)
    own.get_by_role("button", name="Revoke").click()
    expect(other.locator("#api-key")).to_be_visible()
    expect(other.locator("#flash")).to_contain_text("You revoked the key this tab used")
    assert other.evaluate("sessionStorage.getItem('blockzoo.apiKey')") is None
    context.close()
    assert not errors, errors
    assert httpx.get(f"{served.url}/v1/keys", headers={"Authorization": f"Bearer {key}"}).status_code == 401

    page.reload()  # this tab's own key still works; the list shows the other one revoked
    expect(page.locator("tr.key-row.revoked")).to_contain_text("second tab")


# Swagger UI and ReDoc render a large spec in the browser: slow on 2 loaded cores.
DOCS_TIMEOUT_MS = 30_000


def test_api_docs_render_their_operations_with_the_network_unplugged(browser, served: Served) -> None:
    blocked: list[str] = []
    context = offline_context(browser, served, blocked)
    tab = context.new_page()
    tab.goto(f"{served.url}/docs")
    expect(tab.locator(".opblock-summary-path", has_text="/v1/zoos/{zoo_id}/searches")).to_be_visible(timeout=DOCS_TIMEOUT_MS)
    expect(tab.locator(".opblock-tag", has_text="searches")).to_be_visible(timeout=DOCS_TIMEOUT_MS)
    expect(tab.get_by_text("Score neural architectures on demand")).to_be_visible(timeout=DOCS_TIMEOUT_MS)
    screenshot(tab, "docs", full_page=False)
    tab.goto(f"{served.url}/redoc")
    expect(tab.get_by_role("heading", name="Create Search")).to_be_visible(timeout=DOCS_TIMEOUT_MS)
    expect(tab.get_by_text("Score neural architectures on demand")).to_be_visible(timeout=DOCS_TIMEOUT_MS)
    screenshot(tab, "redoc", full_page=False)
    context.close()
    assert blocked == [], "the docs tried to reach the network"

