"""What the API process serves to browsers, over real HTTP: the dashboard, offline docs, dataset previews.

(The same pages in a real browser: tests/test_ui_browser.py.)
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest
from PIL import Image
from service_helpers import ROOT, LiveServer, assert_error

from app.ui.dashboard import STATIC_DIR
from infra.settings import Settings

pytest_plugins = ["service_fixtures"]

EXTERNAL_URL = re.compile(r"""(?:src|href|url)\s*[=(]\s*["']?(?:https?:)?//""", re.IGNORECASE)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with LiveServer(Settings(data_dir=tmp_path_factory.mktemp("data"), job_backend="local")) as live:
        yield live


@pytest.fixture(scope="module")
def key(server: LiveServer) -> str:
    return server.new_key("ui")


@pytest.fixture(scope="module")
def dataset(server: LiveServer, key: str) -> dict:
    with server.client(key) as c:
        r = c.post("/v1/datasets/builtin", json={"name": "synthetic", "options": {"num_images": 300}})
    assert r.status_code == 201, r.text
    return r.json()


def test_root_redirects_to_the_dashboard(server: LiveServer) -> None:
    with server.client() as c:
        r = c.get("/", follow_redirects=False)
        assert r.status_code == 307 and r.headers["location"].endswith("/ui/")
        page = c.get("/ui/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/ui/static/js/main.js">' in page.text
    # Nothing but this origin, even by mistake: no CDN, no inline script.
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy and "unsafe" not in policy


def test_dashboard_files_are_served_and_reference_nothing_outside(server: LiveServer) -> None:
    files = [p for p in STATIC_DIR.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"index.html", "style.css", "main.js", "api.js", "charts.js", "favicon.svg"}
    with server.client() as c:
        for path in files:
            text = path.read_text()
            assert not EXTERNAL_URL.search(text), f"{path.name} loads something from another host"
            r = c.get(f"/ui/static/{path.relative_to(STATIC_DIR).as_posix()}")
            assert r.status_code == 200, path


API_PATH = re.compile(r"""["`](/v1/[^"`?]*)""")  # a path the dashboard requests, up to its query string


def test_every_api_path_the_dashboard_calls_is_in_the_openapi_spec(server: LiveServer) -> None:
    """A typo in a route (or a route renamed in the API) fails here, not in a person's browser."""
    with server.client() as c:
        spec = c.get("/openapi.json").json()
    routes = [re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(path)) + "$") for path in spec["paths"]]
    called = set()
    for path in (STATIC_DIR / "js").rglob("*.js"):
        text = path.read_text()
        # Text goes into the page as text nodes only, and jobs are followed with fetch (whose
        # Authorization header EventSource cannot send): the key never goes into a URL.
        assert ".innerHTML" not in text and "insertAdjacentHTML" not in text and "new EventSource" not in text, path
        for found in API_PATH.findall(text):
            found = re.sub(r"\$\{[^}]*$", "", found)  # a query string built in a nested template
            called.add(re.sub(r"\$\{[^}]*\}", "ID", found))
    assert {"/v1/jobs/ID/events", "/v1/validations/ID", "/v1/latency-tables/measure", "/v1/keys/ID/revoke",
            "/v1/zoos/ID/resume"} <= called
    unknown = sorted(p for p in called if not any(route.match(p) for route in routes))
    assert not unknown, f"the dashboard calls paths the API does not have: {unknown}"


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_api_docs_use_only_assets_served_here(server: LiveServer, page: str) -> None:
    with server.client() as c:
        html = c.get(page).text
        assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
        assert assets, html
        for asset in assets:
            assert asset.startswith("/"), f"{page} loads {asset}"
            assert c.get(asset).status_code == 200, asset
        assert "fonts.googleapis" not in html and "cdn." not in html


def test_class_counts_add_up_to_the_splits(server: LiveServer, key: str, dataset: dict) -> None:
    with server.client(key) as c:
        r = c.get(f"/v1/datasets/{dataset['id']}/class-counts")
    assert r.status_code == 200, r.text
    classes = r.json()["classes"]
    assert [c["name"] for c in classes] == dataset["class_names"]
    assert sum(c["train"] for c in classes) == dataset["num_train"]
    assert sum(c["test"] for c in classes) == dataset["num_test"]


def test_sample_grid_has_one_row_per_class_and_is_the_same_every_time(server: LiveServer, key: str,
                                                                      dataset: dict) -> None:
    path = f"/v1/datasets/{dataset['id']}/samples.png"
    with server.client(key) as c:
        first = c.get(path, params={"per_class": 5, "max_classes": 4, "cell": 20})
        again = c.get(path, params={"per_class": 5, "max_classes": 4, "cell": 20})
        assert_error(c.get(path, params={"cell": 4}), 422, "validation_error", "cell")
    assert first.status_code == 200 and first.headers["content-type"] == "image/png"
    assert first.content == again.content
    with Image.open(io.BytesIO(first.content)) as image:
        assert image.size == (5 * 22 - 2, 4 * 22 - 2)  # cells of 20 pixels, 2 apart


def test_previews_are_invisible_to_other_owners(server: LiveServer, dataset: dict) -> None:
    with server.client(server.new_key("someone-else")) as other:
        for suffix in ("class-counts", "samples.png"):
            assert_error(other.get(f"/v1/datasets/{dataset['id']}/{suffix}"), 404, "not_found")
    with server.client() as anonymous:
        assert anonymous.get(f"/v1/datasets/{dataset['id']}/samples.png").status_code == 401


def test_preview_endpoints_do_not_import_torch() -> None:
    code = ("import sys, app.ui, app.ui.previews_api, app.main; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)
