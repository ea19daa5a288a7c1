"""JupyterLab server and headless Chromium harness for the end-to-end widget tests."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
import psutil

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


def find_chromium() -> Path | None:
    """The Chromium the browser test drives: ``$MAELIB_CHROMIUM``, else the first of ``CHROMIUM_NAMES`` on
    PATH (``shutil.which``), else the newest one Playwright downloaded (``$PLAYWRIGHT_BROWSERS_PATH`` or
    ``~/.cache/ms-playwright``, as ``python -m playwright install chromium`` leaves it). None if none."""
    env = os.environ.get("MAELIB_CHROMIUM")
    if env:
        return Path(env) if Path(env).is_file() else None
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return Path(found)
    cache = Path(os.environ.get("PLAYWRIGHT_BROWSERS_PATH") or Path.home() / ".cache" / "ms-playwright")
    bundled = sorted(cache.glob("chromium-*/chrome-linux*/chrome"), key=lambda p: p.parts[-3])
    return bundled[-1] if bundled else None


# a Path whose .exists() is False when no Chromium was found: the browser test then skips, naming it
CHROMIUM = find_chromium() or Path("chromium (not found: install it, or set MAELIB_CHROMIUM)")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
MARKER_VAR = "MAELIB_BROWSER_TEST_RUN"
LAB_SETTINGS = {  # no news toast (as `make lab`); every cell in the DOM (no layout shifts while scrolling)
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
}
COUNT_RE = re.compile(r"visible patches:\s*(\d+)\s*/\s*(\d+)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LabServer:
    """A JupyterLab server on 127.0.0.1 with a random port and token, isolated config and settings.

    Args:
        root_dir: folder served as the Lab root.
        home: scratch folder for config, data, runtime, settings and the server log.
        marker: value of ``MAELIB_BROWSER_TEST_RUN`` in the server's (and its kernels') environment.
    """

    def __init__(self, root_dir: Path, home: Path, marker: str) -> None:
        self.root_dir, self.home, self.marker = root_dir, home, marker
        self.port, self.token = free_port(), secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = home / "jupyterlab.log"
        self.proc: subprocess.Popen | None = None
        self.seen: dict[int, psutil.Process] = {}

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        dirs = {k: self.home / k.lower() for k in (
            "JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR",
            "JUPYTERLAB_SETTINGS_DIR", "JUPYTERLAB_WORKSPACES_DIR", "IPYTHONDIR")}
        for key, path in dirs.items():
            path.mkdir(parents=True, exist_ok=True)
            env[key] = str(path)
        for plugin, values in LAB_SETTINGS.items():
            f = dirs["JUPYTERLAB_SETTINGS_DIR"] / f"{plugin}.jupyterlab-settings"
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(json.dumps(values))
        env.update(MAELIB_PROFILE="quick", MPLBACKEND="module://matplotlib_inline.backend_inline",
                   OMP_NUM_THREADS="1", PYDEVD_DISABLE_FILE_VALIDATION="1", **{MARKER_VAR: self.marker})
        return env

    def start(self, timeout: float = 60.0) -> None:
        cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1",
               f"--port={self.port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={self.token}",
               f"--ServerApp.root_dir={self.root_dir}", "--LabApp.news_url=None",
               "--LabApp.check_for_updates_class=jupyterlab.handlers.announcements.NeverCheckForUpdate"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")
        self.home.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "wb")
        try:
            self.proc = subprocess.Popen(cmd, cwd=self.root_dir, env=self._env(), stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.api_request("api/status"), timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.3)
        raise RuntimeError(f"JupyterLab did not answer within {timeout:.0f} s:\n{self.log_tail()}")

    def api_request(self, path: str, method: str = "GET") -> urllib.request.Request:
        return urllib.request.Request(f"{self.url}/{path}", method=method,
                                      headers={"Authorization": f"token {self.token}"})

    def shutdown_kernels(self) -> None:
        """Stop every kernel of the server (REST API); the server keeps running."""
        self.remember_children()
        with urllib.request.urlopen(self.api_request("api/kernels"), timeout=10) as r:
            kernels = json.load(r)
        for k in kernels:
            urllib.request.urlopen(self.api_request(f"api/kernels/{k['id']}", "DELETE"), timeout=30).close()

    def lab_url(self, notebook: str) -> str:
        return f"{self.url}/lab/tree/{notebook}?reset&token={self.token}"

    def remember_children(self) -> None:
        """Record the server's descendants (kernels live in their own sessions) so stop() can reap them."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            for p in psutil.Process(self.proc.pid).children(recursive=True):
                self.seen[p.pid] = p
        except psutil.NoSuchProcess:
            pass

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """Shut down via the REST API, then SIGTERM / SIGKILL the process group and any remembered child."""
        if self.proc is None:
            return
        self.remember_children()
        if self.proc.poll() is None:
            try:
                urllib.request.urlopen(self.api_request("api/shutdown", "POST"), timeout=5).close()
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
        for sig in (signal.SIGTERM, signal.SIGKILL):  # the server's process group, whatever is left of it
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + 5
            while self.proc.poll() is None or _group_alive(self.proc.pid):
                if time.monotonic() > deadline:
                    break
                time.sleep(0.1)
        self.proc.wait(timeout=5)
        _reap([p for p in self.seen.values() if p.is_running()])


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def _reap(procs: list[psutil.Process]) -> None:
    """Terminate, wait 5 s, then kill whatever is still alive."""
    for sig in ("terminate", "kill"):
        for p in procs:
            try:
                getattr(p, sig)()
            except psutil.NoSuchProcess:
                pass
        _, procs = psutil.wait_procs(procs, timeout=5)
        if not procs:
            return


def leftover_processes(marker: str) -> list[str]:
    """Live processes whose environment carries ``MAELIB_BROWSER_TEST_RUN=marker``, and children of this
    process running jupyter, a kernel or chromium: their pids and command lines."""
    found = []
    children = {p.pid for p in psutil.Process().children(recursive=True)}
    for p in psutil.process_iter(["pid", "cmdline", "status"]):
        try:
            if p.info["status"] == psutil.STATUS_ZOMBIE or p.pid == os.getpid():
                continue
            cmd = " ".join(p.info["cmdline"] or [])
            if p.environ().get(MARKER_VAR) == marker or (
                    p.pid in children and re.search(r"jupyter|ipykernel|chrom", cmd)):
                found.append(f"{p.pid}: {cmd[:200]}")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def write_notebook(path: Path, sources: list[str]) -> Path:
    """A notebook of code cells for the ipykernel ``python3`` kernel."""
    kernel = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources],
                                            metadata={"kernelspec": kernel}), path)
    return path


def strip_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nb.metadata.pop("widgets", None)
    nbformat.write(nb, path)


class NotebookPage:
    """Drives one notebook in JupyterLab with real input events; collects JavaScript errors."""

    def __init__(self, page, lab: LabServer, name: str, artifacts: Path) -> None:
        self.page, self.lab, self.name, self.artifacts = page, lab, name, artifacts
        self.js_errors: list[str] = []
        self.shots: list[Path] = []
        self.timings: dict[str, float] = {}
        page.on("console", lambda m: self.js_errors.append(f"console.{m.type}: {m.text}")
                if m.type == "error" else None)
        page.on("pageerror", lambda e: self.js_errors.append(f"pageerror: {e}"))

    def open(self, timeout: float = 60.0) -> None:
        t0 = time.monotonic()
        self.page.goto(self.lab.lab_url(self.name), timeout=timeout * 1000)
        self.page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for(timeout=timeout * 1000)
        self.wait_idle(timeout)
        self.page.locator(".jp-NotebookPanel .jp-Cell .jp-InputPrompt").first.click()
        self.timings["open"] = time.monotonic() - t0

    def wait_idle(self, timeout: float = 60.0, all_executed: bool = False) -> None:
        """Wait until the kernel is connected and idle (twice in a row); optionally until every cell ran."""
        js = r"""(allExecuted) => {
            const ind = document.querySelector('.jp-NotebookPanel .jp-Notebook-ExecutionIndicator');
            const kernel = [...document.querySelectorAll('#jp-main-statusbar .jp-StatusBar-TextItem')]
                .map(e => e.textContent.trim()).find(t => / \| \w+$/.test(t)) ?? '';
            const prompts = [...document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell')]
                .filter(c => (c.querySelector('.cm-content')?.textContent ?? 'x').trim() !== '')
                .map(c => c.querySelector('.jp-InputPrompt').textContent.trim());
            const done = allExecuted ? prompts.every(t => /^\[\d+\]:$/.test(t))
                : !prompts.some(t => t.includes('*'));
            const failed = [...document.querySelectorAll('.jp-NotebookPanel .jp-OutputArea-output')]
                .some(o => o.dataset.mimeType === 'application/vnd.jupyter.stderr'
                      && /Traceback|^\w*(Error|Exception)\b/m.test(o.textContent));
            const idle = !!ind && ind.dataset.status === 'idle' && kernel.endsWith('| Idle')
                && !kernel.startsWith('No Kernel');
            return idle && (done || failed);
        }"""
        for _ in range(2):
            self.page.wait_for_function(js, arg=all_executed, timeout=timeout * 1000, polling=250)
            self.page.wait_for_timeout(400)
        self.lab.remember_children()

    def menu(self, menu: str, item: str, timeout: float = 20.0) -> None:
        """Click ``menu > item`` in the menu bar once the item is enabled (the notebook is current)."""
        deadline = time.monotonic() + timeout
        while True:
            self.page.get_by_role("menuitem", name=menu, exact=True).click()
            entry = self.page.locator(".lm-Menu").get_by_role("menuitem", name=item, exact=True)
            entry.wait_for(timeout=5_000)
            if entry.get_attribute("aria-disabled") != "true" and "lm-mod-disabled" not in (
                    entry.get_attribute("class") or ""):
                entry.click()
                return
            self.page.keyboard.press("Escape")
            if time.monotonic() > deadline:
                raise AssertionError(f"menu item {menu} > {item} stayed disabled for {timeout:.0f} s")
            self.page.wait_for_timeout(500)

    def run_all(self, timeout: float = 180.0) -> None:
        """Clear the stored outputs (Edit menu), then Run > Run All Cells and wait until every cell ran."""
        t0 = time.monotonic()
        self.menu("Edit", "Clear Outputs of All Cells")
        prompts = self.page.locator(".jp-NotebookPanel .jp-InputPrompt")
        self.wait_for(prompts.all_inner_texts, lambda ts: not any(re.search(r"\d", t) for t in ts), 10,
                      "the outputs to be cleared")
        for attempt in range(2):  # a click that lands while the menu re-renders is lost: try once more
            self.menu("Run", "Run All Cells")
            try:
                self.wait_for(prompts.all_inner_texts, lambda ts: any(re.search(r"[*\d]", t) for t in ts),
                              10, "Run All Cells to start")
                break
            except AssertionError:
                self.screenshot(None, f"run_all_not_started_{attempt}")
                if attempt:
                    raise
        self.wait_idle(timeout, all_executed=True)
        self.timings["run all"] = time.monotonic() - t0
        errors = self.kernel_errors()
        assert not errors, f"{self.name}: error output in the notebook:\n" + "\n---\n".join(errors)

    def kernel_errors(self) -> list[str]:
        """Tracebacks in stderr/error outputs, and widget views that fell back to text or failed to show."""
        outputs = self.page.evaluate("""() => [...document.querySelectorAll(
            '.jp-NotebookPanel .jp-OutputArea-output')].map(o => [o.dataset.mimeType || '', o.innerText])""")
        bad = []
        for mime, text in outputs:
            error = mime == "application/vnd.jupyter.stderr" and re.search(
                r"Traceback|^\w*(Error|Exception)\b", text, re.M)
            if error or re.search(r"Error displaying widget|\b\w*(Box|interactive)\(children=", text):
                bad.append(text[:800])
        return bad

    def widget_cell(self, slider_label: str, without: tuple[str, ...] = ()):
        """The first code cell showing a slider ``slider_label`` and no control named in ``without``."""
        slider = self.slider(self.page, slider_label)
        cell = self.page.locator(".jp-NotebookPanel .jp-CodeCell").filter(has=slider)
        for name in without:
            cell = cell.filter(has_not=self.control_name(name))
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        try:
            cell.first.wait_for(timeout=30_000)
        except PlaywrightTimeout:
            raise AssertionError(f"{self.name}: no rendered widget with a slider {slider_label!r} "
                                 f"(and none of {without}) in the outputs") from None
        return cell.first

    def control_name(self, label: str):
        exact = re.compile(rf"^\s*{re.escape(label)}\s*$")
        return self.page.locator(".widget-label, .widget-label-basic > span").filter(has_text=exact)

    def slider(self, scope, label: str):
        return scope.locator(".widget-slider").filter(has=self.control_name(label))

    @staticmethod
    def count_label(cell):
        return cell.locator("xpath=.//*[starts-with(normalize-space(text()), 'visible patches:')]").first

    @staticmethod
    def figure(cell):
        """The largest image in the cell's output (the widget's figure)."""
        imgs = [i for i in cell.locator(".jp-OutputArea-output img").all() if i.is_visible()]
        if not imgs:
            raise AssertionError("no figure image in the widget's output")
        return max(imgs, key=lambda i: (b := i.bounding_box()) and b["width"] * b["height"] or 0)

    @staticmethod
    def handle_fraction(handle, track) -> float:
        """Where the slider handle's centre sits along the track, 0 (left) to 1 (right)."""
        h, t = handle.bounding_box(), track.bounding_box()
        return (h["x"] + h["width"] / 2 - t["x"]) / t["width"]

    def drag_slider(self, handle, track, fraction: float) -> None:
        """Press the mouse on the slider handle and drag it to ``fraction`` of the track's width."""
        handle.scroll_into_view_if_needed()
        h, t = handle.bounding_box(), track.bounding_box()
        x0, y0 = h["x"] + h["width"] / 2, h["y"] + h["height"] / 2
        self.page.mouse.move(x0, y0)
        self.page.mouse.down()
        self.page.mouse.move(t["x"] + fraction * t["width"], y0, steps=12)
        self.page.mouse.up()

    def wait_for(self, get, check, timeout: float, what: str):
        """Poll ``get()`` until ``check`` accepts its value; else raise AssertionError naming ``what``."""
        deadline = time.monotonic() + timeout
        while True:
            last = get()
            if check(last):
                return last
            if time.monotonic() > deadline:
                raise AssertionError(f"waited {timeout:.0f} s for {what}; last: {last!r:.300}")
            self.page.wait_for_timeout(250)

    def snap(self, locator, path: Path | None = None) -> bytes:
        """PNG of ``locator`` once it is scrolled into view and its box has stopped moving."""
        locator.scroll_into_view_if_needed()

        def two_boxes():
            first = locator.bounding_box()
            self.page.wait_for_timeout(150)
            return first, locator.bounding_box()

        self.wait_for(two_boxes, lambda boxes: boxes[0] == boxes[1], 10, "the layout to settle")
        return locator.screenshot(path=None if path is None else str(path), animations="disabled")

    def screenshot(self, locator, tag: str) -> bytes:
        """Save ``<notebook>_<tag>.png`` in the artifacts folder; ``locator=None``: the whole window."""
        path = self.artifacts / f"{Path(self.name).stem}_{tag}.png"
        data = self.snap(locator, path) if locator is not None else self.page.screenshot(path=str(path))
        self.shots.append(path)
        return data


def png_pixels(data: bytes):
    """A screenshot's PNG bytes as an `(H, W, 3)` uint8 array."""
    import io

    import numpy as np
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def region_change(before, after, box: tuple[int, int, int, int]) -> float:
    """Mean absolute difference (0..255) of two screenshots inside ``box`` = (x0, y0, x1, y1) pixels."""
    import numpy as np

    x0, y0, x1, y1 = box
    a, b = before[y0:y1, x0:x1].astype(np.int16), after[y0:y1, x0:x1].astype(np.int16)
    assert a.shape == b.shape and a.size, f"screenshots differ in size or the box {box} is empty"
    return float(np.abs(a - b).mean())


if __name__ == "__main__" and sys.argv[1:] == ["--find-chromium"]:  # used by `make browser-deps`
    print(find_chromium() or "")
