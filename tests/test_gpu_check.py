"""The GPU acceptance command runs end to end (toy sizes, on the CPU here) and writes its results files; without
CUDA and without --smoke it writes that the GPU path is unmeasured."""
import json, os, subprocess, sys
import pytest
from pathlib import Path
from conftest import ROOT

ENV = dict(os.environ, PYTHONWARNINGS='ignore', OMP_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='')

@pytest.mark.slow   # 1.6 min on 2 shared cores: the command's toy run stays in `make test-slow`
def test_gpu_check_smoke(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT/'benchmarks'/'gpu_check.py'), '--smoke', '--results', str(tmp_path/'gpu'),
                        '--work', str(tmp_path/'work')], capture_output=True, text=True, env=ENV, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((tmp_path/'gpu.json').read_text())
    assert res['smoke']['steps'] == 4 and res['smoke']['nonfinite'] == 0
    assert res['speed'] and all('error' not in v and v['steps_per_s'] > 0 for v in res['speed'])
    assert res['evaluation']['subsets'] == 2 and res['evaluation']['seconds'] > 0
    assert 'skipped' in res['ddp']
    md = (tmp_path/'gpu.md').read_text()
    assert '## 1. Smoke run' in md and '| variant | steps/s' in md and 'CPU (no CUDA device)' in md

def test_gpu_check_without_cuda_says_unmeasured(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT/'benchmarks'/'gpu_check.py'), '--results', str(tmp_path/'gpu')],
                       capture_output=True, text=True, env=ENV, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads((tmp_path/'gpu.json').read_text())['unmeasured']
    assert '**Unmeasured.**' in Path(tmp_path/'gpu.md').read_text()

def test_gpu_check_partial_results_render():
    "A check stopped part-way (a failed section, a skipped variant, sections not reached) still writes readable results."
    sys.path.insert(0, str(ROOT/'benchmarks'))
    import gpu_check
    assert gpu_check.error_text(AssertionError()) == 'AssertionError: AssertionError()'   # a message-less error is one line too
    assert gpu_check.error_text(ValueError('bad\nmore')) == 'ValueError: bad'
    res = dict(device='GPU X', provenance=dict(date='d', commit='c', machine='m', torch='t'),
               smoke=dict(error='RuntimeError: boom'),
               speed=[dict(variant='bf16 channels-last-3d', steps_per_s=10.0, peak_gb=3.0, warmup_s=20.0),
                      dict(variant='bf16 compile channels-last-3d', error='AssertionError: AssertionError()'),
                      dict(variant='fp16 compile channels-last-3d', skipped='time budget')])
    md = gpu_check.markdown(res)
    assert '**Failed:** `RuntimeError: boom`' in md and 'goal met' in md and 'skipped: time budget' in md
    assert md.count('*Not reached*') == 2 and 'did not finish' in md
