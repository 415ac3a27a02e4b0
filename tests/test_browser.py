"""What a user sees, in headless Chromium: the docs site (search, sidebar, signatures) and the viewer in a real JupyterLab.

Skipped where Chromium (Debian's `chromium`) or the `playwright` package is absent; Playwright drives the system
Chromium (`executable_path`), so no browser is downloaded. Screenshots go to the test's tmp folder, and also to
`$DMAFNET_SCREENSHOTS` when that is set (to look at them); the viewer's update times are printed (`pytest -s`).
"""
import inspect, json, os, secrets, shutil, socket, subprocess, sys, time, urllib.request
from pathlib import Path
import pytest
from conftest import ROOT

CHROMIUM = next((p for p in map(shutil.which, ['chromium', 'chromium-browser', 'google-chrome']) if p), None)
JUPYTER_LAB = Path(sys.executable).parent / 'jupyter-lab'
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason='Chromium absent (Debian package `chromium`)')
sync_api = pytest.importorskip('playwright.sync_api', reason='playwright absent (pip install playwright)')

def _keep(shot:Path):
    "Copy a screenshot to $DMAFNET_SCREENSHOTS, if set."
    if os.environ.get('DMAFNET_SCREENSHOTS'):
        d = Path(os.environ['DMAFNET_SCREENSHOTS']); d.mkdir(parents=True, exist_ok=True); shutil.copy(shot, d / shot.name)

@pytest.fixture(scope='module')
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'])
        try: yield b
        finally: b.close()

# --- the docs site ----------------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def site():
    from test_docs import build_site
    build_site()
    return ROOT / '_docs'

def test_docs_pages_in_a_browser(site, browser, tmp_path):
    page = browser.new_page(viewport={'width': 1280, 'height': 900})
    try:
        for name, query, hit in [('index', 'phantom', '02_phantom.html'), ('method', 'sliding window', '.html'),
                                 ('10a_viewer', 'set_available', '10a_viewer.html#Viewer.set_available')]:
            page.goto((site / f'{name}.html').as_uri())
            nav = page.locator('nav.dm-nav')
            assert nav.is_visible() and nav.locator('a').count() >= 20, name          # the sidebar, every page
            assert nav.locator('li.dm-cur a').count() == 1, name                         # the current page marked
            page.fill('#dm-search', query)
            first = page.locator('#dm-results li a').first
            first.wait_for(timeout=5000)
            assert any(hit in h for h in page.locator('#dm-results a').evaluate_all('as => as.map(a => a.href)')), (name, query)
            shot = tmp_path / f'docs_{name}.png'; page.screenshot(path=shot); _keep(shot)
        # the API page: classes drawn as classes with their parameters, methods as functions
        sig = page.locator('h3#Viewer + div.highlight pre').inner_text()
        assert sig.startswith('class Viewer(') and 'model' in sig and 'dpi' in sig
        assert page.locator('h3[id="Viewer.set_case"] + div.highlight pre').inner_text().startswith('def set_case(')
        page.locator('#dm-results a').first.click()                                     # a search result opens its section
        page.wait_for_load_state()
        assert page.url.endswith('#Viewer.set_available')
        # a source link opens the module's source at its line
        with page.expect_navigation(): page.locator('a', has_text='source').first.click()
        assert '/src/dmafnet/viewer.py.html#L-' in page.url and page.locator(f'#{page.url.split("#")[1]}').count() == 1
        shot = tmp_path / 'docs_source.png'; page.screenshot(path=shot); _keep(shot)
    finally: page.close()

# --- the viewer in JupyterLab -----------------------------------------------------------------------------

@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    "A tiny 2D phantom run (as in test_viz), trained for one step."
    import torch
    from dmafnet.phantom import make_phantom
    from dmafnet.preprocess import preprocess_dataset
    from dmafnet.config import preset
    from dmafnet.train import train
    torch.set_num_threads(1)
    work = tmp_path_factory.mktemp('run')
    make_phantom(work / 'raw', n_cases=3, spacing=4.0)
    preprocess_dataset(work / 'raw', work / 'cache', verbose=False)
    cfg = preset('phantom', data=str(work / 'cache'), out=str(work / 'run'), base_width=2, patch_size=(32, 32), batch_size=2,
                 epochs=1, steps_per_epoch=1, missing='pdt', val_every=0, progress=False, threads=1)
    return Path(train(cfg)) / 'checkpoints' / 'last.pt'

def _free_port()->int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

TIME_DRAWS = '''import time
draw_s = []   # seconds the kernel spent on each redraw (render + PNG), to tell it from the round trip
def _timed(draw=viewer.draw):
    t = time.perf_counter(); draw(); draw_s.append(round(time.perf_counter() - t, 3))
viewer.draw = _timed'''

KERNEL_EVAL = '''async (code) => {
  const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
  let out = '';
  const future = kernel.requestExecute({code, silent: false, store_history: false});
  future.onIOPub = (msg) => { if (msg.header.msg_type === 'stream') out += msg.content.text; };
  await future.done;
  return out;
}'''

def _notebook(path:Path, checkpoint:Path):
    import nbformat
    nb = nbformat.v4.new_notebook()
    nb.metadata['kernelspec'] = {'name': 'python3', 'display_name': 'Python 3', 'language': 'python'}
    nb.cells = [nbformat.v4.new_code_cell('import torch\nfrom dmafnet.viewer import Viewer'),
                nbformat.v4.new_code_cell(f"torch.set_num_threads(1)\nviewer = Viewer.from_checkpoint({str(checkpoint)!r}, split='all')"),
                nbformat.v4.new_code_cell(TIME_DRAWS), nbformat.v4.new_code_cell('viewer')]
    nbformat.write(nb, path)

@pytest.fixture(scope='module')
def jupyterlab(tmp_path_factory, checkpoint):
    "A JupyterLab server on a free local port with a token, in a tmp folder holding `viewer.ipynb`; shut down after."
    if not JUPYTER_LAB.exists(): pytest.skip(f'{JUPYTER_LAB} absent (jupyterlab is a dev requirement)')
    home = tmp_path_factory.mktemp('lab')
    (home / 'config' / 'labconfig').mkdir(parents=True)
    (home / 'config' / 'labconfig' / 'page_config.json').write_text(json.dumps(   # no news pop-up over the notebook
        {'disabledExtensions': {'@jupyterlab/apputils-extension:announcements': True}}))
    _notebook(home / 'viewer.ipynb', checkpoint)
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, 'JUPYTER_CONFIG_DIR': str(home / 'config'), 'JUPYTER_RUNTIME_DIR': str(home / 'runtime'),
           'JUPYTERLAB_WORKSPACES_DIR': str(home / 'workspaces'), 'PYTHONPATH': str(ROOT),
           'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1', 'MPLBACKEND': 'Agg'}
    log = open(home / 'server.log', 'w')
    server = subprocess.Popen([str(JUPYTER_LAB), '--no-browser', '--ServerApp.ip=127.0.0.1', f'--ServerApp.port={port}',
                               '--ServerApp.port_retries=0', f'--IdentityProvider.token={token}', f'--ServerApp.root_dir={home}',
                               *(['--allow-root'] if hasattr(os, 'geteuid') and os.geteuid() == 0 else []),   # CI runs as root
                               '--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate',
                               '--LabApp.expose_app_in_browser=True'],
                              cwd=home, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f'http://127.0.0.1:{port}'
    try:
        for _ in range(120):
            if server.poll() is not None: pytest.fail(f'jupyter lab exited ({server.returncode}): {(home / "server.log").read_text()[-2000:]}')
            try:
                with urllib.request.urlopen(f'{base}/api/status?token={token}', timeout=2) as r:
                    if r.status == 200: break
            except OSError: time.sleep(0.5)
        else: pytest.fail('jupyter lab did not answer in 60 s')
        yield dict(base=base, token=token, home=home)
    finally:
        try: urllib.request.urlopen(urllib.request.Request(f'{base}/api/shutdown?token={token}', method='POST'), timeout=10)
        except OSError: pass
        try: server.wait(timeout=20)
        except subprocess.TimeoutExpired: server.kill(); server.wait()
        log.close()

def _timed_update(page, image, action)->float:
    "Seconds from `action` to the viewer showing a new picture, loaded."
    before = image.get_attribute('src')
    t0 = time.perf_counter()
    action()
    page.wait_for_function('([sel, old]) => { const i = document.querySelector(sel); '
                           'return i && i.src !== old && i.complete && i.naturalWidth > 0; }',
                           arg=['.jp-OutputArea img.widget-image', before], timeout=60_000, polling='raf')
    return time.perf_counter() - t0

@pytest.mark.slow   # ~60-65 s on 2 cores: a tiny training run, JupyterLab's start, the kernel's imports
def test_viewer_in_jupyterlab(jupyterlab, browser, tmp_path):
    from dmafnet.viewer import Viewer
    from PIL import Image
    page = browser.new_page(viewport={'width': 1280, 'height': 900})
    try:
        page.goto(f"{jupyterlab['base']}/lab/tree/viewer.ipynb?token={jupyterlab['token']}")
        page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget "
                               "&& window.jupyterapp.shell.currentWidget.sessionContext", timeout=120_000)
        page.wait_for_function("() => window.jupyterapp.shell.currentWidget.sessionContext.session?.kernel?.status === 'idle'",
                               timeout=120_000)
        page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        image = page.locator('.jp-OutputArea img.widget-image')
        image.wait_for(timeout=240_000)
        page.wait_for_function("() => { const i = document.querySelector('.jp-OutputArea img.widget-image'); "
                               "return i.complete && i.naturalWidth > 0; }", timeout=60_000)
        image.scroll_into_view_if_needed()
        shot = tmp_path / 'viewer_all.png'; page.screenshot(path=shot); _keep(shot)
        # legible: the figure takes the cell's width and no text is under 10 px on screen
        geo = image.evaluate("i => ({shown: i.clientWidth, natural: i.naturalWidth, area: i.closest('.jp-OutputArea-output').clientWidth})")
        defaults = inspect.signature(Viewer).parameters
        smallest_px = defaults['font_size'].default * defaults['dpi'].default / 72 * geo['shown'] / geo['natural']
        assert geo['shown'] >= 0.9 * geo['area'], geo
        assert smallest_px >= 10, (geo, smallest_px)
        # untick T1ce, then step the slice slider twice
        box = page.locator('.widget-checkbox', has_text='t1ce').locator('input[type=checkbox]')
        assert box.is_checked()
        pic0 = image.screenshot()
        times = {'untick t1ce': _timed_update(page, image, box.uncheck)}
        assert not box.is_checked()
        pic1 = image.screenshot()
        shot = tmp_path / 'viewer_no_t1ce.png'; page.screenshot(path=shot); _keep(shot)
        readout = page.locator('.widget-slider .widget-readout').first
        z0 = int(readout.inner_text())
        handle = page.locator('.widget-slider .noUi-handle').first
        step = 'ArrowLeft' if z0 > 1 else 'ArrowRight'
        for k in (1, 2):
            times[f'slice step {k}'] = _timed_update(page, image, lambda: (handle.focus(), handle.press(step)))
        z2 = int(readout.inner_text())
        assert abs(z2 - z0) == 2, (z0, z2)
        pic2 = image.screenshot()
        shot = tmp_path / 'viewer_slice.png'; page.screenshot(path=shot); _keep(shot)
        def differ(a, b):
            import io
            from PIL import ImageChops
            return ImageChops.difference(Image.open(io.BytesIO(a)).convert('RGB'), Image.open(io.BytesIO(b)).convert('RGB')).getbbox() is not None
        assert differ(pic0, pic1) and differ(pic1, pic2), 'the picture did not change'
        kernel_s = json.loads(page.evaluate(KERNEL_EVAL, 'import json; print(json.dumps(draw_s[-3:]))'))
        report = {**{k: round(v, 3) for k, v in times.items()}, 'kernel redraw s (render + PNG)': kernel_s,
                  'smallest text px': round(smallest_px, 1), **geo}
        print(f"\nviewer in JupyterLab (2D, {os.cpu_count()} cores): " + json.dumps(report))
        if os.environ.get('DMAFNET_SCREENSHOTS'):
            (Path(os.environ['DMAFNET_SCREENSHOTS']) / 'viewer_times.json').write_text(json.dumps(report, indent=1))
        assert max(times.values()) < 5, times   # target ≤ 1 s per update; 5 s so a busy machine does not fail it
    finally: page.close()
