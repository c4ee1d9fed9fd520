"""The "Try it" widget of notebook 21, driven in a real browser: JupyterLab in headless Chromium.

The test serves a copy of the notebook (outputs cleared) from a private JupyterLab, runs every cell
from the Run menu, moves the temperature slider with the keyboard as a learner would, and checks that
the figure below the sliders is redrawn in place and that no cell shows an error.
Left out: the other notebooks, reading the figure's pixels (its title is drawn inside the PNG), and
browsers other than Chromium.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import nbformat
import pytest
from conftest import NOTEBOOKS, read_notebook

CHROMIUM = Path("/usr/bin/chromium")
# Set by .ci/run: there a missing browser is a failure, elsewhere a skip with its reason.
REQUIRED = os.environ.get("COURSE_REQUIRE_BROWSER") == "1"
if not CHROMIUM.exists():
    reason = f"Chromium not found at {CHROMIUM}: apt-get install chromium"
    if REQUIRED:
        pytest.fail(f"{reason} (COURSE_REQUIRE_BROWSER=1)", pytrace=False)
    pytest.skip(reason, allow_module_level=True)
if REQUIRED:
    import playwright.sync_api as sync_api
else:
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="playwright is not installed: pip install playwright")
expect = sync_api.expect

pytestmark = pytest.mark.browser

CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
NOTEBOOK = "21_softmax.ipynb"
# Limits, generous for a busy 2-core machine; an unloaded one needs about a quarter of each.
SERVER_START_S = 60.0  # JupyterLab answering /api/status
SERVER_STOP_S = 15.0  # JupyterLab shutting its kernel down after SIGTERM
LOAD_MS = 60_000  # the page loading JupyterLab and the notebook's kernel starting
RUN_ALL_MS = 90_000  # every cell of the notebook
STEP_MS = 30_000  # any other single wait in the page

# User settings of the private JupyterLab: no prompt about fetching news, and every cell attached
# to the page (no windowing), so that counting execution prompts counts all cells.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
}
# The status bar reads "<kernel name> | Idle" once a kernel is connected and waiting.
KERNEL_IDLE = re.compile(r"^(?!No Kernel).+ \| Idle$")
ERROR_TEXT = "Traceback|Error"  # in a stderr output: an exception, not a warning
STDERR_OUTPUT = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'
PROMPT = ".jp-CodeCell .jp-InputArea-prompt"
RAN = r"^\[\d+\]:$"  # the prompt of a code cell that has run: "[12]:"
# True once no cell is pending and either all `codeCells` have run or an output shows an exception.
RUN_ALL_FINISHED = """([codeCells, ran, errorText]) => {
    const prompts = [...document.querySelectorAll('%s')].map(p => p.textContent.trim());
    if (prompts.some(p => p.includes('*'))) return false;
    const allRan = prompts.length === codeCells && prompts.every(p => new RegExp(ran).test(p));
    const outputs = [...document.querySelectorAll('%s')];
    return allRan || outputs.some(o => new RegExp(errorText).test(o.textContent));
}""" % (PROMPT, STDERR_OUTPUT)  # noqa: UP031 - JavaScript braces make %-formatting the readable choice
FIGURE = ".jp-OutputArea-output img"
FIGURE_REDRAWN = """([cell, before]) => {
    const figure = cell.querySelector('%s');
    return figure !== null && figure.src !== before;
}""" % FIGURE  # noqa: UP031 - JavaScript braces make %-formatting the readable choice


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cleared_copy(source: Path, folder: Path) -> int:
    """Write `source` into `folder` without outputs or execution counts; return its number of code cells."""
    notebook = read_notebook(source)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    for cell in code:
        cell.outputs, cell.execution_count = [], None
    nbformat.write(notebook, folder / source.name)
    return len(code)


def private_jupyter_env(home: Path) -> dict[str, str]:
    """Environment that keeps JupyterLab's config, data (notebook signatures), settings, workspaces and
    runtime files under `home`."""
    dirs = {"JUPYTER_CONFIG_DIR": "config", "JUPYTER_DATA_DIR": "data", "JUPYTER_RUNTIME_DIR": "runtime",
            "IPYTHONDIR": "ipython", "JUPYTERLAB_SETTINGS_DIR": "settings",
            "JUPYTERLAB_WORKSPACES_DIR": "workspaces"}
    env = dict(os.environ)
    for name, sub in dirs.items():
        (home / sub).mkdir(parents=True, exist_ok=True)
        env[name] = str(home / sub)
    for plugin, settings in LAB_SETTINGS.items():
        path = home / "settings" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(settings))
    return env


def lab_command(root: Path, port: int, token: str) -> list[str]:
    """JupyterLab on 127.0.0.1:`port` serving `root`, with news, update checks and PyPI listings off."""
    return [sys.executable, "-m", "jupyterlab", "--no-browser",
            "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
            "--ServerApp.allow_root=True",  # containers and CI runners often run as root
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.handlers.announcements.NeverCheckForUpdate",
            "--LabApp.extension_manager=readonly"]


def wait_until_serving(server: subprocess.Popen, url: str, log: Path) -> None:
    """Poll `url` until it answers 200; fail with the server log if the server exits or stalls."""
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"JupyterLab exited with code {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)  # poll interval
    pytest.fail(f"JupyterLab did not answer {url} within {SERVER_START_S} s:\n{log.read_text()[-3000:]}")


def stop(server: subprocess.Popen) -> None:
    """SIGTERM: JupyterLab shuts its kernels down, then exits. SIGKILL only if it hangs."""
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=SERVER_STOP_S)
        except subprocess.TimeoutExpired:
            server.kill()  # its kernels notice their parent is gone and exit on their own
            server.wait()


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """A private JupyterLab serving a cleared copy of the notebook: (notebook URL, number of code cells)."""
    root = tmp_path / "notebooks"
    root.mkdir()
    code_cells = cleared_copy(NOTEBOOKS / NOTEBOOK, root)
    port, token = free_port(), secrets.token_hex(16)
    log = tmp_path / "jupyterlab.log"
    with log.open("wb") as out:
        server = subprocess.Popen(lab_command(root, port, token), cwd=root,
                                  env=private_jupyter_env(tmp_path / "jupyter"),
                                  stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until_serving(server, f"http://127.0.0.1:{port}/api/status?token={token}", log)
        yield f"http://127.0.0.1:{port}/lab/tree/{NOTEBOOK}?token={token}", code_cells
    finally:
        stop(server)


@pytest.fixture
def page() -> Iterator[sync_api.Page]:
    """A fresh page in headless Chromium, closed afterwards whatever happens."""
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                             args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(STEP_MS)
            yield page
        finally:
            browser.close()


@contextmanager
def screenshot_on_failure(page: sync_api.Page, path: Path) -> Iterator[None]:
    """When the block fails, save a screenshot to `path` and name the file in the failure."""
    try:
        yield
    except Exception as error:
        try:
            page.screenshot(path=str(path))
            where = f"screenshot: {path}"
        except sync_api.Error as problem:  # the browser itself is gone
            where = f"no screenshot ({problem})"
        raise AssertionError(f"{error}\n{where}") from error


def wait_for_idle_kernel(page: sync_api.Page, timeout_ms: float = STEP_MS) -> None:
    """Wait until the status bar shows a connected kernel that is idle."""
    page.locator(".jp-StatusBar-TextItem").filter(has_text=KERNEL_IDLE).wait_for(timeout=timeout_ms)


def run_all_cells(page: sync_api.Page, code_cells: int) -> None:
    """Run > Run All Cells; wait until every code cell has run, and fail if one raised."""
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    try:
        page.wait_for_function(RUN_ALL_FINISHED, arg=[code_cells, RAN, ERROR_TEXT], timeout=RUN_ALL_MS)
    except sync_api.TimeoutError:
        raise AssertionError(f"the cells did not finish within {RUN_ALL_MS / 1000:.0f} s; "
                             f"prompts: {page.locator(PROMPT).all_inner_texts()}") from None
    assert not error_outputs(page), "a cell failed:\n" + "\n".join(error_outputs(page))
    prompts = page.locator(PROMPT).all_inner_texts()
    assert len(prompts) == code_cells and all(re.match(RAN, p.strip()) for p in prompts), \
        f"not every cell ran: {prompts}"


def wait_for_redraw(cell: sync_api.Locator, before: str) -> None:
    """Wait until the figure in `cell` shows an image other than `before`."""
    try:
        cell.page.wait_for_function(FIGURE_REDRAWN, arg=[cell.element_handle(), before])
    except sync_api.TimeoutError:
        raise AssertionError(f"the figure was not redrawn within {STEP_MS / 1000:.0f} s "
                             "of moving the slider") from None


def error_outputs(page: sync_api.Page) -> list[str]:
    """The text of every output in the notebook that shows an exception."""
    return [text for text in page.locator(STDERR_OUTPUT).all_inner_texts() if re.search(ERROR_TEXT, text)]


def test_moving_the_temperature_slider_redraws_the_figure_in_place(lab, page, tmp_path):
    url, code_cells = lab
    with screenshot_on_failure(page, tmp_path / "failure.png"):
        page.goto(url, timeout=LOAD_MS)
        wait_for_idle_kernel(page, timeout_ms=LOAD_MS)
        run_all_cells(page, code_cells)

        cell = page.locator(".jp-CodeCell").filter(has=page.locator(".widget-slider"))
        temperature = cell.locator(".widget-slider").filter(
            has=page.locator(".widget-label", has_text=re.compile(r"^temperature$")))
        readout = temperature.locator(".widget-readout")
        figure = cell.locator(FIGURE)
        expect(readout).to_have_text("1.00", timeout=STEP_MS)
        expect(figure).to_have_count(1, timeout=STEP_MS)
        before = figure.get_attribute("src")

        temperature.locator(".noUi-handle").focus()  # where Tab takes a keyboard user
        page.keyboard.press("ArrowRight")  # one step of 0.1: one redraw, at temperature 1.1

        expect(readout).to_have_text("1.10", timeout=STEP_MS)
        wait_for_redraw(cell, before)
        wait_for_idle_kernel(page)
        expect(figure).to_have_count(1, timeout=STEP_MS)  # updated in place, not a second figure
        assert not error_outputs(page), "the redraw failed:\n" + "\n".join(error_outputs(page))
