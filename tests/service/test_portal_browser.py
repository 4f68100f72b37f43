"""The portal in a real browser: headless Chromium (Debian's chromium + chromium-driver) via Selenium.

``scripts/browser/setup_chromium.sh`` installs the browser (root + apt-get; ``.ci/run`` calls it
before ``make test``). Without it these tests skip, except under CI (``CI=true``), where they fail.
Set ``PROXCOMPUTE_PORTAL_SCREENSHOTS=DIR`` to save 1280x800 screenshots of the main pages
(``docs/img/portal/`` holds the committed ones).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from portal_support import html_table, in_cone, survey
from tap_server import running_server

from proxcompute.catalog import from_dataframe
from proxcompute.service.access import hash_password

ALICE, BOB = "tok-alice-browser-0123", "tok-bob-browser-01234"
ALICE_PASSWORD = "alice-browser-password"
CONE = (0.1, 89.6, 0.3)  # next to the pole, inside a dense cluster
QUERY = ("SELECT id, ra, dec, mag FROM survey.gaia\n"
         f"WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', {CONE[0]}, {CONE[1]}, {CONE[2]}))\nORDER BY id")  # fmt: skip
SHOTS = os.environ.get("PROXCOMPUTE_PORTAL_SCREENSHOTS")
pytestmark = pytest.mark.timeout(600)


def _missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"the portal's browser tests need Chromium in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def chromedriver() -> str:
    try:
        import selenium  # noqa: F401
    except ImportError:
        _missing("selenium is not installed (pip install '.[test]')")
    path = shutil.which("chromedriver")
    if path is None or shutil.which("chromium") is None:
        _missing("chromium/chromium-driver are not installed: run scripts/browser/setup_chromium.sh as root")
    return path


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("portalbrowser")
    df = survey(30_000, seed=23)
    from_dataframe(df, name="gaia", max_rows=2_500).to_catalog(root / "survey" / "gaia")
    from_dataframe(df.head(5_000), name="private", max_rows=2_500).to_catalog(root / "survey" / "private")
    access = root.parent / "access.yaml"
    access.write_text(
        f"users:\n  alice: {{token: {ALICE}, password_hash: '{hash_password(ALICE_PASSWORD)}', groups: [team]}}\n"
        f"  bob: {{token: {BOB}, groups: [team]}}\n"
        "groups:\n  team: {}\n"
        "catalogs:\n  survey.private: {groups: [team]}\n"
    )
    with running_server(root, "--access", str(access)) as url:
        yield url.rsplit("/tap", 1)[0], df


@pytest.fixture()
def browser(chromedriver, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,800",
                "--disable-gpu", "--renderer-process-limit=2"):  # fmt: skip
        options.add_argument(arg)
    options.add_experimental_option("prefs", {"download.default_directory": str(tmp_path),
                                              "download.prompt_for_download": False})  # fmt: skip
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    # a 1280x800 page: the window is that plus what the browser's own frame takes
    dw, dh = driver.execute_script("return [outerWidth - innerWidth, outerHeight - innerHeight]")
    driver.set_window_size(1280 + dw, 800 + dh)
    driver.download_dir = tmp_path
    try:
        yield driver
    finally:
        driver.quit()


def _wait(predicate, timeout: float = 240.0, what: str = "the page"):  # generous: the machine is shared
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except (NoSuchElementException, StaleElementReferenceException):  # the page is (re)loading
            value = None
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _shot(driver, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(SHOTS) / f"{name}.png"))


def _sign_in_with_password(driver, base: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver.get(base + "/signin")
    _shot(driver, "signin")
    driver.find_element(By.ID, "username").send_keys("alice")
    driver.find_element(By.ID, "password").send_keys(ALICE_PASSWORD + Keys.ENTER)  # the keyboard submits
    _wait(lambda: "Signed in as alice" in driver.find_element(By.ID, "signed-in-as").text, what="sign-in")


def _image_loaded(driver, element_id: str) -> bool:
    return driver.execute_script(
        "const i = document.getElementById(arguments[0]) || document.querySelector(arguments[0]);"
        "return i.complete && i.naturalWidth > 0;", element_id)  # fmt: skip


def test_anonymous_sees_public_catalogs_only(browser, served):
    from selenium.webdriver.common.by import By

    base, _df = served
    browser.get(base + "/")
    names = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "#catalogs tbody th a")]
    assert "survey.gaia" in names and "survey.private" not in names
    assert browser.find_element(By.ID, "signed-in-as").text == "Anonymous"
    browser.get(base + "/catalogs/survey.private")
    assert "no catalog" in browser.find_element(By.ID, "error-message").text
    browser.get(base + "/mydb")
    assert "sign in" in browser.find_element(By.TAG_NAME, "main").text
    # the keyboard: the first Tab reaches "Skip to content", which moves the focus to the page
    from selenium.webdriver.common.keys import Keys

    browser.get(base + "/")
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    skip = browser.switch_to.active_element
    assert skip.text == "Skip to content"
    skip.send_keys(Keys.ENTER)
    assert browser.switch_to.active_element.get_attribute("id") == "main"


def test_sign_in_browse_and_run_a_query(browser, served):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    base, df = served
    _sign_in_with_password(browser, base)
    names = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "#catalogs tbody th a")]
    assert {"survey.gaia", "survey.private"} <= set(names)
    _shot(browser, "catalogs")
    browser.find_element(By.LINK_TEXT, "survey.gaia").click()
    _wait(lambda: browser.find_element(By.ID, "catalog-name").text == "survey.gaia")
    assert browser.find_element(By.ID, "row-count").text == f"{len(df):,}"
    units = {r.find_element(By.TAG_NAME, "th").text: r.find_elements(By.TAG_NAME, "td")[1].text
             for r in browser.find_elements(By.CSS_SELECTOR, "#columns tbody tr")}  # fmt: skip
    assert units["ra"] == "deg" and units["dec"] == "deg" and "mag" in units
    _wait(lambda: _image_loaded(browser, "figure.map img"), what="the coverage map")
    _shot(browser, "catalog")
    # the query editor: type, then Ctrl+Enter runs it
    browser.get(base + "/query")
    box = browser.find_element(By.ID, "query")
    box.clear()
    box.send_keys(QUERY)
    _shot(browser, "query")
    box.send_keys(Keys.CONTROL, Keys.ENTER)
    _wait(lambda: browser.find_elements(By.ID, "result"), what="the result table")
    shown = html_table(browser.page_source, "result")
    want = in_cone(df, *CONE).sort_values("id")
    assert len(want) > 50
    assert shown.id.astype(int).tolist() == want.id.tolist()[:50]
    np.testing.assert_allclose(shown.dec.astype(float), want.dec.to_numpy()[:50], rtol=1e-9)
    _wait(lambda: _image_loaded(browser, "sky-plot"), what="the sky plot")
    _shot(browser, "result")
    browser.execute_script("document.getElementById('page-info').scrollIntoView()")
    _shot(browser, "result-table")
    browser.find_element(By.ID, "next-page").click()
    _wait(lambda: "Rows 51" in browser.find_element(By.ID, "page-info").text)
    shown = html_table(browser.page_source, "result")
    assert shown.id.astype(int).tolist() == want.id.tolist()[50:100]
    # download the CSV through the browser
    browser.find_element(By.PARTIAL_LINK_TEXT, "CSV").click()
    path = _wait(lambda: next(iter(browser.download_dir.glob("job-*.csv")), None), what="the CSV download")
    got = pd.read_csv(path)
    assert got.id.tolist() == want.id.tolist()


def test_errors_show_their_position(browser, served):
    from selenium.webdriver.common.by import By

    base, _ = served
    browser.get(base + "/query")
    box = browser.find_element(By.ID, "query")
    box.clear()
    box.send_keys("SELECT id\nFROM survey.gaia\nWHERE nosuch > 1")
    browser.find_element(By.ID, "run").click()
    _wait(lambda: browser.find_elements(By.ID, "query-error"))
    assert browser.find_element(By.ID, "query-error-position").text == "line 3, column 7"
    assert "nosuch" in browser.find_element(By.ID, "query-error-message").text
    # markup in an error message is shown as text and never runs
    from selenium.common.exceptions import NoAlertPresentException

    payload = "<img src=x onerror=alert(1)>"
    box = browser.find_element(By.ID, "query")
    box.clear()
    box.send_keys(f'SELECT "{payload}" FROM survey.gaia')
    browser.find_element(By.ID, "run").click()
    _wait(lambda: payload in browser.find_element(By.ID, "query-error-message").text)
    assert not browser.find_elements(By.CSS_SELECTOR, "main img")
    with pytest.raises(NoAlertPresentException):
        _ = browser.switch_to.alert.text


def test_submit_a_job_and_watch_it_finish(browser, served):
    from selenium.webdriver.common.by import By

    base, df = served
    _sign_in_with_password(browser, base)
    browser.get(base + "/query")
    box = browser.find_element(By.ID, "query")
    box.clear()
    box.send_keys("SELECT flag, COUNT(*) AS n FROM survey.gaia GROUP BY flag ORDER BY flag")
    browser.find_element(By.ID, "submit-job").click()
    _wait(lambda: browser.find_elements(By.ID, "jobs"))
    first = browser.find_element(By.CSS_SELECTOR, "#jobs tbody tr")
    job_id = first.get_attribute("data-job")
    # the list refreshes itself while the job runs
    _wait(lambda: "COMPLETED" in browser.find_element(By.CSS_SELECTOR, f"tr[data-job='{job_id}']").text,
          what="the job to complete")  # fmt: skip
    _shot(browser, "jobs")
    fits = browser.execute_script("const b = document.getElementById('jobs').parentElement;"
                                  "return b.scrollWidth <= b.clientWidth;")  # fmt: skip
    assert fits, "at 1280x800 the job list shows its Abort/Delete column without scrolling"
    browser.find_element(By.LINK_TEXT, job_id).click()
    _wait(lambda: browser.find_elements(By.ID, "result"))
    shown = html_table(browser.page_source, "result")
    want = df.groupby("flag").size()
    assert dict(zip(shown.flag.astype(int), shown.n.astype(int), strict=True)) == want.to_dict()
    assert browser.find_element(By.ID, "phase").text == "COMPLETED"
    # Delete, from the keyboard
    from selenium.webdriver.common.keys import Keys

    browser.find_element(By.CSS_SELECTOR, "button.delete").send_keys(Keys.ENTER)
    _wait(lambda: browser.find_elements(By.ID, "jobs"))
    assert job_id not in browser.page_source


def test_share_a_table_and_see_it_as_another_user(browser, served):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    base, df = served
    _sign_in_with_password(browser, base)
    browser.get(base + "/query")
    box = browser.find_element(By.ID, "query")
    box.clear()
    box.send_keys("SELECT TOP 25 id, ra, dec FROM survey.gaia ORDER BY id")
    browser.find_element(By.ID, "table_name").send_keys("first25")
    browser.find_element(By.ID, "run").click()
    _wait(lambda: browser.find_elements(By.ID, "result"))
    browser.get(base + "/mydb")
    Select(browser.find_element(By.ID, "share-first25")).select_by_value("group:team")
    browser.find_element(By.CSS_SELECTOR, "tr[data-table='first25'] button.share-button").click()
    _wait(lambda: "group:team" in browser.find_element(By.CSS_SELECTOR, "tr[data-table='first25']").text)
    assert "Using" in browser.find_element(By.ID, "quota").text
    _shot(browser, "mydb")
    # bob signs in with his token (the token form) and sees the table, read-only
    browser.find_element(By.CSS_SELECTOR, "header form button").click()  # Sign out
    _wait(lambda: browser.find_element(By.ID, "signed-in-as").text == "Anonymous", what="sign-out")
    browser.get(base + "/signin")
    browser.find_element(By.ID, "token").send_keys(BOB)
    browser.find_element(By.ID, "signin-token").click()
    _wait(lambda: "Signed in as bob" in browser.find_element(By.ID, "signed-in-as").text)
    browser.get(base + "/mydb")
    assert "mydb_alice.first25" in browser.find_element(By.ID, "shared-with-me").text
    browser.get(base + "/query")
    box = browser.find_element(By.ID, "query")
    box.clear()
    box.send_keys("SELECT id FROM mydb_alice.first25 ORDER BY id")
    browser.find_element(By.ID, "run").click()
    _wait(lambda: browser.find_elements(By.ID, "result"))
    assert html_table(browser.page_source, "result").id.astype(int).tolist() == sorted(df.id)[:25]


def test_phone_sized_window(browser, served):
    from selenium.webdriver.common.by import By

    base, _ = served
    browser.set_window_size(390, 844)
    for path in ("/", "/query", "/jobs", "/signin", "/catalogs/survey.gaia"):
        browser.get(base + path)
        overflow = browser.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 1, (path, overflow)  # wide tables scroll inside their own box
    browser.get(base + "/query")
    assert browser.find_element(By.ID, "run").is_displayed()
    _shot(browser, "phone-query")


def test_the_job_list_follows_a_job_by_itself(browser, served):
    import httpx
    from selenium.webdriver.common.by import By

    base, _ = served
    auth = {"Authorization": f"Bearer {ALICE}"}
    r = httpx.post(base + "/tap/async", data={"LANG": "ADQL", "QUERY": "SELECT TOP 1 id FROM survey.gaia"},
                   headers=auth)  # fmt: skip  (PENDING: it waits for PHASE=RUN)
    job_id = r.headers["location"].rsplit("/", 1)[-1]
    browser.get(base + "/signin")
    browser.find_element(By.ID, "token").send_keys(ALICE)
    browser.find_element(By.ID, "signin-token").click()
    _wait(lambda: "Signed in as alice" in browser.find_element(By.ID, "signed-in-as").text)
    browser.get(base + "/jobs")
    row = f"tr[data-job='{job_id}']"
    assert "PENDING" in browser.find_element(By.CSS_SELECTOR, row).text
    # the job starts and ends elsewhere (pyvo would do this); the open list shows it without a reload by hand
    assert httpx.post(f"{base}/tap/async/{job_id}/phase", data={"PHASE": "RUN"}, headers=auth).status_code == 303
    _wait(lambda: "COMPLETED" in browser.find_element(By.CSS_SELECTOR, row).text, what="the list to follow the job")
    assert browser.find_element(By.CSS_SELECTOR, row).find_elements(By.CSS_SELECTOR, "button.delete")


@pytest.fixture(scope="module")
def axe_js() -> str:
    """axe-core's script, installed from the npm registry by scripts/browser/setup_axe.py."""
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[2] / "scripts" / "browser" / "setup_axe.py"
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        _missing(f"axe-core could not be installed: {done.stderr.strip()}")
    return Path(done.stdout.strip().splitlines()[-1]).read_text()


def _axe_violations(driver, axe_js: str) -> list[str]:
    """axe's WCAG 2.1 A/AA violations on the page shown, one line each (rule, impact, where)."""
    driver.execute_script(axe_js)
    result = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})"
        ".then(r => done(r.violations.map(v => [v.id, v.impact, v.nodes.map(n => n.target.join(' ')).join(', ')])))"
        ".catch(e => done([['axe failed', String(e), '']]));"
    )
    return [f"{rule} ({impact}): {where}" for rule, impact, where in result]


def test_every_page_passes_an_accessibility_audit(browser, served, axe_js):
    """axe-core finds no WCAG 2.1 A/AA violation on any page, signed out and signed in, including errors and results."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    base, _df = served
    browser.set_script_timeout(120)
    pages = ["/", "/catalogs/survey.gaia", "/query", "/jobs", "/signin", "/mydb", "/catalogs/nosuch"]
    found = {}
    for path in pages:
        browser.get(base + path)
        found["anonymous " + path] = _axe_violations(browser, axe_js)
    _sign_in_with_password(browser, base)
    browser.get(base + "/query")
    box = browser.find_element(By.ID, "query")
    box.clear()
    box.send_keys("SELECT TOP 120 id, ra, dec, mag FROM survey.gaia ORDER BY id")
    browser.find_element(By.ID, "table_name").send_keys("audited")  # MyDB then has a table to share
    browser.find_element(By.ID, "run").click()
    _wait(lambda: browser.find_elements(By.ID, "result"), what="the result table")
    found["alice result"] = _axe_violations(browser, axe_js)
    browser.get(base + "/mydb")
    Select(browser.find_element(By.ID, "share-audited")).select_by_value("group:team")
    browser.find_element(By.CSS_SELECTOR, "tr[data-table='audited'] button.share-button").click()
    _wait(lambda: "group:team" in browser.find_element(By.CSS_SELECTOR, "tr[data-table='audited']").text)
    found["alice /mydb, a table shared"] = _axe_violations(browser, axe_js)
    browser.get(base + "/query")
    box = browser.find_element(By.ID, "query")
    box.clear()
    box.send_keys("SELECT nosuch FROM survey.gaia")
    browser.find_element(By.ID, "run").click()
    _wait(lambda: browser.find_elements(By.ID, "query-error"), what="the error")
    found["alice query error"] = _axe_violations(browser, axe_js)
    for path in ["/", "/jobs", "/mydb", "/catalogs/survey.private"]:
        browser.get(base + path)
        found["alice " + path] = _axe_violations(browser, axe_js)
    # the audit can fail: an image without alternative text on the page is found
    browser.execute_script("const i = document.createElement('img'); i.src = 'x.png'; i.id = 'no-alt';"
                           "document.getElementById('main').appendChild(i);")  # fmt: skip
    assert any(line.startswith("image-alt") and "#no-alt" in line for line in _axe_violations(browser, axe_js))
    bad = {page: v for page, v in found.items() if v}
    assert not bad, "\n".join(f"{page}: {line}" for page, lines in bad.items() for line in lines)


def test_query_editor_completes_tables_columns_and_functions(browser, served, axe_js):
    """Typing offers the readable tables, the named table's columns (through an alias) and ADQL functions."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    base, _df = served
    browser.get(base + "/query")
    box = browser.find_element(By.ID, "query")
    listed = lambda: [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#completion-list li")]  # noqa: E731
    box.clear()
    box.send_keys("SELECT TOP 5 g.id FROM survey.g")
    assert _wait(lambda: listed(), what="the completion list") == ["survey.gaia"]  # not survey.private: anonymous
    assert box.get_attribute("aria-activedescendant") == "completion-0"
    browser.set_script_timeout(120)
    assert _axe_violations(browser, axe_js) == []  # the open list too
    box.send_keys(Keys.TAB)
    assert box.get_attribute("value") == "SELECT TOP 5 g.id FROM survey.gaia"
    assert browser.find_element(By.ID, "completion-list").get_attribute("hidden") is not None
    box.send_keys(" AS g WHERE g.ma")
    assert _wait(lambda: listed(), what="the column list") == ["g.mag"]
    box.send_keys(Keys.ENTER)
    box.send_keys(" < 19 AND 1 = CONT")
    assert "CONTAINS" in _wait(lambda: listed(), what="the function list")
    box.send_keys(Keys.ESCAPE)
    assert not listed() or browser.find_element(By.ID, "completion-list").get_attribute("hidden") is not None
    box.send_keys("AINS(POINT('ICRS', g.ra, g.dec), CIRCLE('ICRS', 0.1, 89.6, 0.3))")
    assert box.get_attribute("value") == ("SELECT TOP 5 g.id FROM survey.gaia AS g WHERE g.mag < 19 AND 1 = "
                                          "CONTAINS(POINT('ICRS', g.ra, g.dec), CIRCLE('ICRS', 0.1, 89.6, 0.3))")  # fmt: skip
    box.send_keys(Keys.CONTROL, Keys.ENTER)  # Ctrl+Enter still runs, whatever the list shows
    _wait(lambda: browser.find_elements(By.ID, "result"), what="the result table")
    assert len(html_table(browser.page_source, "result")) == 5
