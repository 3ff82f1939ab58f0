"""The dashboard and the API docs in a real browser: Debian's headless Chromium driven by Playwright.

A live ``blockzoo serve`` (embedded: SQLite and in-process jobs, one torch thread) runs on a free
port with a fresh data folder. Every browser context is cut off from the network: any request
that is not for the server is aborted and recorded, and the run fails if there was one. The
fixtures do what a person does, once, in order of need: sign in, import a dataset, build a zoo,
run a search; each test then checks one behaviour on top of them. The pages are saved as
screenshots under docs/ui/ (shown in docs/ui.md).

Chromium is Debian's package (``apt-get install chromium``; ``make test`` installs it when it
can); Playwright for Python drives it through ``executable_path`` and never downloads a browser.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest
from service_helpers import ROOT, free_port, service_env, stop_process

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
SCREENSHOTS = ROOT / "docs" / "ui"
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
    blocked: list[str] = field(default_factory=list)  # requests that tried to leave the machine


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
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
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


def screenshot(page, name: str, full_page: bool = True) -> None:
    """docs/ui/<name>.png (the full page, or the viewport), in a 256-colour palette to stay small in git."""
    from PIL import Image

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page, animations="disabled", caret="hide")
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
    """A lazy mbv3-tiny zoo, created with the form (its small defaults) and watched to the end."""
    go(page, served, f"/zoos?dataset={dataset}")
    page.get_by_role("button", name="Create zoo").click()
    expect(page).to_have_url(re.compile(r"#/zoos/zoo_\w+$"))
    scenario.zoo_id = page.url.rsplit("/", 1)[1]
    expect(page.locator(".job-panel .progress-text")).to_have_text("100 %", timeout=JOB_TIMEOUT_MS)
    expect(page.locator(".page-header .badge")).to_have_text("ready")
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
    screenshot(page, "search-phone")
    page.set_viewport_size(DESKTOP)
    go(page, served, "/searches")
    expect(page.locator("table")).to_contain_text(search)
    screenshot(page, "searches")

    go(page, served, f"/searches/{search}")
    page.locator(f"svg.pareto g.point.pick[data-arch='{best['arch_id']}']").click()
    expect(page).to_have_url(re.compile(rf"#/builder\?zoo=\w+&arch={re.escape(best['arch_id'])}$"))
    expect(page.locator("input[name=arch_id]")).to_have_value(best["arch_id"])


def test_a_pick_downloads_its_weights_and_fine_tunes(page, served: Served, search: str) -> None:
    go(page, served, f"/searches/{search}")
    picks = page.locator(".card", has=page.get_by_role("heading", name="Picks (best first)"))
    first = picks.locator("tbody tr").first
    with page.expect_download(timeout=JOB_TIMEOUT_MS) as download:
        first.get_by_role("button", name="Download weights").click()
    assert download.value.suggested_filename.endswith(".safetensors")
    first.get_by_role("button", name="Fine-tune").click()
    form = page.locator("form[data-form=finetune]")
    form.locator("input[name=epochs]").fill("0.2")
    form.get_by_role("button", name="Start fine-tune").click()
    expect(page).to_have_url(re.compile(r"#/finetunes/ft_\w+$"))
    expect(page.locator(".job-panel .badge")).to_have_text("succeeded", timeout=JOB_TIMEOUT_MS)
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

