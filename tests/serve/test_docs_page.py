"""``/docs`` is served from the app itself: no CDN, so it works on an offline edge server."""

import re

import pytest

pytestmark = pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince20")


@pytest.fixture(scope="module")
def http():
    from fastapi.testclient import TestClient

    from mahppo.serve.app import app

    with TestClient(app) as c:
        yield c


def test_docs_page_loads_nothing_from_another_host(http):
    r = http.get("/docs")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", r.text)  # no external script, style or link
    assert "fetch(\"openapi.json\")" in r.text and "v1/decide" in r.text


def test_docs_page_names_the_app_and_the_openapi_document_lists_the_api(http):
    assert "mahppo edge decision-maker" in http.get("/docs").text
    spec = http.get("/openapi.json").json()
    assert {"/v1/decide", "/v1/model", "/healthz"} <= set(spec["paths"]) and "/docs" not in spec["paths"]


def test_redoc_page_with_cdn_assets_is_gone(http):
    assert http.get("/redoc").status_code == 404
