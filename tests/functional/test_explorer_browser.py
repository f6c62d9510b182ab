"""The explorer in a real browser: Playwright driving Debian's Chromium (installed by
scripts/install-system-deps; no browser download) against a real node. Clicks from the
dashboard to a transaction, its block and an account, searches, watches new blocks arrive
over the websocket, and checks a hostile token name stays text. Screenshots are saved in
the test's tmp_path (the path is printed)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from framework.harness import NodeProcess
from playwright.sync_api import Browser, Page, sync_playwright

from smartchain.crypto.address import to_bech32
from smartchain.crypto.hashing import h256
from smartchain.crypto.keys import PrivateKey

CHROMIUM = Path(os.environ.get("SMARTCHAIN_CHROMIUM", "/usr/bin/chromium"))
HPC = 10**8
TIMEOUT_MS = 30_000  # a deadline for what must happen, never a synchronisation


def _key(tag: str) -> PrivateKey:
    return PrivateKey.from_seed(h256(b"test_explorer_browser/" + tag.encode()))


ALICE = _key("alice")
BOB = _key("bob")
SMART_NODE_GENESIS = [(ALICE.address, 1_000 * HPC)]
HOSTILE = "<script>window.__xss = 1</script>"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} not found: run ./scripts/install-system-deps "
                    "(or set SMARTCHAIN_CHROMIUM)")
    with sync_playwright() as pw:
        # --no-sandbox: CI containers run as root, where Chromium's sandbox cannot start
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    p = context.new_page()
    p.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    p.on("pageerror", lambda exc: errors.append(str(exc)))
    yield p
    context.close()
    assert errors == [], errors  # no script error on any page visited


@pytest.fixture(scope="module")
def chain(smart_node: NodeProcess) -> dict[str, Any]:
    client = smart_node.client
    client.issue_token(ALICE, "EVIL", HOSTILE, 0, 1_000)
    sent = client.transfer(ALICE, to_bech32(BOB.address), 7 * HPC)
    return {"transfer": sent}


def screenshot(page: Page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path


def test_clicking_from_the_dashboard_to_a_transaction_its_block_and_an_account(
        smart_node: NodeProcess, chain: dict[str, Any], page: Page, tmp_path: Path) -> None:
    tx = chain["transfer"]
    page.goto(f"{smart_node.url}/")
    assert page.locator("h1").inner_text() == "Dashboard"
    assert screenshot(page, tmp_path, "dashboard").stat().st_size > 0

    page.locator(f'#latest-txs a[href="/txs/{tx["hash"]}"]').first.click()
    page.wait_for_url(f"**/txs/{tx['hash']}")
    assert page.locator("h1").inner_text() == "Transaction"
    assert tx["hash"] in page.locator("main").inner_text()

    page.locator(f'main a[href="/blocks/{tx["height"]}"]').first.click()
    page.wait_for_url(f"**/blocks/{tx['height']}")
    assert page.locator("h1").inner_text() == f"Block {tx['height']}"

    page.locator(f'main a[href="/accounts/{to_bech32(ALICE.address)}"]').first.click()
    page.wait_for_url(f"**/accounts/{to_bech32(ALICE.address)}")
    main = page.locator("main").inner_text()
    balance = smart_node.client.account(to_bech32(ALICE.address))["balance_hpc"]
    assert f"{balance} HPC" in main
    assert page.locator(f'main a[href="/txs/{tx["hash"]}"]').count() == 1  # its transactions
    assert page.locator('main a[href="/tokens/EVIL"]').count() == 1  # its tokens
    screenshot(page, tmp_path, "account")


def test_the_dashboard_shows_new_blocks_as_they_commit(smart_node: NodeProcess, page: Page,
                                                       tmp_path: Path) -> None:
    served = page.goto(f"{smart_node.url}/")
    assert served is not None
    # the height the server rendered (the page's script may update #height before we look)
    found = re.search(r'id="height">(\d+)<', served.text())
    assert found, "the dashboard shows no height"
    rendered = int(found.group(1))
    page.wait_for_selector('#live[data-state="live"]')
    page.wait_for_selector("#latest-blocks tr.live-block")  # pushed over the websocket
    pushed = int(page.locator("#latest-blocks tr.live-block").first.get_attribute(
        "data-height"))
    assert pushed > rendered
    page.wait_for_function("h => Number(document.getElementById('height').textContent) > h",
                           arg=rendered)
    screenshot(page, tmp_path, "dashboard-live")


@pytest.mark.parametrize("what", ["height", "address", "token"])
def test_the_search_box_takes_a_height_an_address_and_a_token(
        smart_node: NodeProcess, chain: dict[str, Any], page: Page, what: str) -> None:
    tx = chain["transfer"]
    q, url, title = {
        "height": (str(tx["height"]), f"/blocks/{tx['height']}", f"Block {tx['height']}"),
        "address": (to_bech32(BOB.address), f"/accounts/{to_bech32(BOB.address)}",
                    re.compile(r"^Account smart1")),
        "token": ("evil", "/tokens/EVIL", "Token EVIL"),
    }[what]
    page.goto(f"{smart_node.url}/blocks")
    page.fill("#search", q)
    page.press("#search", "Enter")
    page.wait_for_url(f"**{url}")
    heading = page.locator("h1").inner_text()
    assert title.match(heading) if isinstance(title, re.Pattern) else heading == title


def test_a_token_named_like_a_script_is_shown_as_text_and_never_runs(
        smart_node: NodeProcess, chain: dict[str, Any], page: Page, tmp_path: Path) -> None:
    for path in ("/tokens", "/tokens/EVIL"):
        page.goto(f"{smart_node.url}{path}")
        assert HOSTILE in page.locator("main").inner_text()  # the name, as text
        assert page.evaluate("typeof window.__xss") == "undefined"
    screenshot(page, tmp_path, "hostile-token")
