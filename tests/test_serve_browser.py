"""reportgen serve in a real browser (Debian's chromium and chromedriver, through Selenium): a clerk
opens the overview and a seed project, changes an amount, sees the warning and the new total,
saves (the file's diff is that value), adds an indicator row, builds the unit and downloads its
zip; a change made on disk meanwhile is detected and nothing typed is lost; user text never runs."""

from __future__ import annotations

import io
import shutil
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from .serve_helpers import Running, copy_data, serving

selenium = pytest.importorskip("selenium")
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.remote.webelement import WebElement  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

SEED = "2021/银川市数字化城市管理监督指挥中心/数字化城市管理信息采集服务.yaml"
WAIT = 20  # seconds for a check or a save; a build gets BUILD_WAIT
BUILD_WAIT = 90
CHROMIUM = shutil.which("chromium")
DRIVER = shutil.which("chromedriver")

pytestmark = [
    pytest.mark.soffice,
    pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="needs chromium and chromium-driver (make system)"),
]


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM  # type: ignore[assignment]
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1500,1000", "--lang=zh-CN"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Running]:
    with serving(copy_data(tmp_path / "data"), tmp_path / "build") as running:
        yield running


def _wait(driver: webdriver.Chrome, condition, seconds: float = WAIT):
    return WebDriverWait(driver, seconds, poll_frequency=0.05).until(lambda d: condition(d))


def _text(driver: webdriver.Chrome, selector: str) -> str:
    return driver.find_element(By.CSS_SELECTOR, selector).text


def _status(driver: webdriver.Chrome, expected: str) -> None:
    _wait(driver, lambda d: _text(d, "#status") == expected)


def _type(element: WebElement, text: str) -> None:
    element.send_keys(Keys.CONTROL, "a")
    element.send_keys(Keys.DELETE)
    element.send_keys(text)


def _open(driver: webdriver.Chrome, server: Running, relative: str) -> None:
    driver.get(server.url + "project/" + relative)
    _status(driver, "与文件一致")
    auto = driver.find_element(By.ID, "auto-preview")
    if auto.is_selected():
        auto.click()  # previews start LibreOffice: only when a test asks for one


def test_change_an_amount_save_add_a_row_and_build_the_unit(browser: webdriver.Chrome, server: Running) -> None:
    driver, path = browser, server.workspace.data / SEED
    original = path.read_text(encoding="utf-8")
    driver.get(server.url)
    link = driver.find_element(By.LINK_TEXT, "数字化城市管理信息采集服务")
    row = link.find_element(By.XPATH, "./ancestor::tr")
    assert row.find_elements(By.TAG_NAME, "td")[4].text == "98.06"
    assert row.find_element(By.CSS_SELECTOR, ".badge").text == "未生成"
    link.click()
    _status(driver, "与文件一致")
    driver.find_element(By.ID, "auto-preview").click()
    assert _text(driver, "#total") == "98.06"
    assert _text(driver, "#counts") == "0 个错误，0 个警告"

    _type(driver.find_element(By.CSS_SELECTOR, '.v[data-key="funds.total.executed"]'), "170.00")
    _wait(driver, lambda d: _text(d, "#total") == "97.86")
    assert _text(driver, '[data-target="f:funds.rate"] .msg.warning') == "填写的执行率 96.37% 与计算值 94.44% 不一致"
    assert _text(driver, '[data-target="f:total"] .msg.warning') == "填写的总分 98.06 与各行得分之和 97.86 不一致；表上将印 97.86"
    _status(driver, "已修改 1 处，未保存")
    driver.find_element(By.ID, "save").click()
    _status(driver, "已保存")
    assert path.read_text(encoding="utf-8") == original.replace('全年执行数(B): "173.47"', '全年执行数(B): "170.00"')

    # build the unit from the overview, with progress, then download its zip
    driver.get(server.url)
    article = driver.find_element(By.LINK_TEXT, "数字化城市管理信息采集服务").find_element(
        By.XPATH, "./ancestor::article")
    article.find_element(By.CSS_SELECTOR, "button.build").click()
    _wait(driver, lambda d: article.find_element(By.CSS_SELECTOR, ".progress-text").text.startswith(("完成", "未完成")),
          BUILD_WAIT)
    assert article.find_element(By.CSS_SELECTOR, ".progress-text").text.startswith("完成：项目 1 个：重新生成 1")
    href = article.find_element(By.CSS_SELECTOR, "a.download").get_attribute("href")
    with urllib.request.urlopen(href, timeout=WAIT) as response:
        archive = zipfile.ZipFile(io.BytesIO(response.read()))
    assert sorted(archive.namelist()) == sorted(f"银川市数字化城市管理监督指挥中心/{name}" for name in (
        "数字化城市管理信息采集服务.docx", "数字化城市管理信息采集服务.pdf", "全部项目.docx", "全部项目.pdf",
        "汇总表.csv", "manifest.json",
    ))
    driver.get(server.url)
    row = driver.find_element(By.LINK_TEXT, "数字化城市管理信息采集服务").find_element(By.XPATH, "./ancestor::tr")
    assert row.find_element(By.CSS_SELECTOR, ".badge").text == "已生成"

    # add an indicator row at the end
    _open(driver, server, SEED)
    driver.find_element(By.CSS_SELECTOR, 'button.add-row[data-table="indicators"]').click()
    last = driver.find_elements(By.CSS_SELECTOR, 'table.rows[data-table="indicators"] tbody tr')[-1]
    assert last.find_element(By.CSS_SELECTOR, "td.num").text == "17"
    _type(last.find_element(By.CSS_SELECTOR, '.v[data-col="name"]'), "新增指标")
    _type(last.find_element(By.CSS_SELECTOR, '.v[data-col="weight"]'), "0")
    _wait(driver, lambda d: _text(d, "#status") == "已修改 1 处，未保存")
    # the new row carries 一级/二级 from the row above: shown as a grey hint
    assert last.find_element(By.CSS_SELECTOR, '.v[data-col="level1"]').get_attribute("placeholder") == "项目效益"
    driver.find_element(By.ID, "save").click()
    _status(driver, "已保存")
    saved = path.read_text(encoding="utf-8")
    added = '  - 三级指标: "新增指标"\n    参考分值: "0"\n'
    assert added in saved
    assert saved.replace(added, "") == original.replace('全年执行数(B): "173.47"', '全年执行数(B): "170.00"')


def test_a_change_on_disk_is_detected_and_the_draft_is_kept(browser: webdriver.Chrome, server: Running) -> None:
    driver, path = browser, server.workspace.data / SEED
    original = path.read_text(encoding="utf-8")
    _open(driver, server, SEED)
    _type(driver.find_element(By.CSS_SELECTOR, '.v[data-key="funds.total.executed"]'), "171.00")
    _status(driver, "已修改 1 处，未保存")
    theirs = original.replace('年度资金总额:\n    年初预算数: "186.50"', '年度资金总额:\n    年初预算数: "186.60"')
    assert theirs != original
    path.write_text(theirs, encoding="utf-8")  # another program saves the file meanwhile
    driver.find_element(By.ID, "save").click()
    _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#banners .banner.error"))
    assert _text(driver, "#banners .banner-text").startswith("此文件在本页打开之后已在磁盘上被修改")
    assert path.read_text(encoding="utf-8") == theirs
    driver.find_element(By.XPATH, "//button[starts-with(., '重新载入（保留我的修改')]").click()
    _wait(driver, lambda d: d.find_elements(By.XPATH, "//button[.='把我的修改合并到当前文件']"))
    assert driver.find_element(By.CSS_SELECTOR, '.v[data-key="funds.total.initial"]').get_attribute("value") == "186.60"
    driver.find_element(By.XPATH, "//button[.='把我的修改合并到当前文件']").click()
    _status(driver, "已修改 1 处，未保存")
    assert driver.find_element(By.CSS_SELECTOR, '.v[data-key="funds.total.executed"]').get_attribute("value") == "171.00"
    driver.find_element(By.ID, "save").click()
    _status(driver, "已保存")
    assert path.read_text(encoding="utf-8") == theirs.replace('全年执行数(B): "173.47"', '全年执行数(B): "171.00"')
    driver.execute_script("localStorage.clear()")


def test_html_typed_into_the_form_is_shown_as_text(browser: webdriver.Chrome, server: Running) -> None:
    driver = browser
    payload = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'
    _open(driver, server, SEED)
    _type(driver.find_element(By.CSS_SELECTOR, '.v[data-key="name"]'), payload)
    first = driver.find_elements(By.CSS_SELECTOR, 'table.rows[data-table="indicators"] tbody tr')[0]
    _type(first.find_element(By.CSS_SELECTOR, '.v[data-col="weight"]'), payload)
    _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, 'td[data-col="weight"] .msg.error'))
    # the validator quotes the number as it reads it, without spaces; the page shows its message as text
    assert first.find_element(By.CSS_SELECTOR, 'td[data-col="weight"] .msg.error').text == (
        '「<imgsrc=xonerror="window.__xss=1"><script>window.__xss=2</script>」不是有效的分数')
    _type(first.find_element(By.CSS_SELECTOR, '.v[data-col="weight"]'), "4")
    _wait(driver, lambda d: _text(d, "#counts") == "0 个错误，0 个警告")
    driver.find_element(By.ID, "save").click()
    _status(driver, "已保存")
    driver.get(server.url)
    assert driver.find_element(By.PARTIAL_LINK_TEXT, "<img src=x").text == payload
    _open(driver, server, SEED)
    assert driver.find_element(By.CSS_SELECTOR, '.v[data-key="name"]').get_attribute("value") == payload
    assert driver.execute_script("return window.__xss === undefined && !document.querySelector('img[src=\"x\"]')")
