"The phantom study script at smoke size: runs, tables, resumption and the report-only path."
import json, subprocess, sys
from conftest import ROOT

STUDY = ROOT / 'benchmarks' / 'study.py'
SMOKE = ['--configs', 'mean fusion', 'full DMAF-Net (+ DTM)', '--seeds', '1', '2', '--epochs', '1', '--steps', '2',
         '--cases', '1', '--eval-patch', 'whole', '--threads', '2']

def study(tmp_path, *args):
    return subprocess.run([sys.executable, str(STUDY), '--work', str(tmp_path / 'work'),
                           '--results', str(tmp_path / 'out' / 'study'), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)

def test_study_smoke_tables_and_resume(tmp_path):
    r = study(tmp_path, *SMOKE)
    assert r.returncode == 0, r.stderr[-3000:]
    runs = json.loads((tmp_path / 'out' / 'study.json').read_text())['runs']
    assert {(x['config'], x['seed']) for x in runs} == {(c, s) for c in ('mean fusion', 'full DMAF-Net (+ DTM)') for s in (1, 2)}
    for x in runs:
        assert len(x['per_subset']) == 15 and set(x['mean']) == {'WT', 'TC', 'ET'}
        assert all(0 <= v <= 1 for v in x['mean'].values())
    assert 'final_beta' in next(x for x in runs if x['config'].startswith('full'))      # DTM on: β recorded
    assert 'final_beta' not in next(x for x in runs if x['config'] == 'mean fusion')
    md = (tmp_path / 'out' / 'study.md').read_text()
    assert '| mean fusion |' in md and '| full DMAF-Net (+ DTM) |' in md and ' ± ' in md
    assert '+0.0 | +0.0 | +0.0' in md                                              # Δ of mean fusion to itself
    assert (tmp_path / 'out' / 'study.png').stat().st_size > 10_000
    # a second call finds every run finished: nothing is trained again
    done = {p: p.stat().st_mtime_ns for p in (tmp_path / 'work').glob('*/result.json')}
    assert len(done) == 4
    r = study(tmp_path, *SMOKE)
    assert r.returncode == 0, r.stderr[-3000:]
    assert {p: p.stat().st_mtime_ns for p in done} == done
    # the tables can be rebuilt from the run folders alone
    (tmp_path / 'out' / 'study.md').unlink()
    r = study(tmp_path, '--report-only', '--seeds', '1', '2', '--epochs', '1', '--steps', '2')
    assert r.returncode == 0 and '| mean fusion |' in (tmp_path / 'out' / 'study.md').read_text()

def test_study_rejects_unknown_configuration(tmp_path):
    r = study(tmp_path, '--configs', 'no such thing')
    assert r.returncode != 0 and 'unknown configurations' in r.stderr
