"The evidence study at smoke size: runs and their probes, paired intervals, resumption, report-only, bad arguments."
import json, math, subprocess, sys
from conftest import ROOT

EVIDENCE = ROOT / 'benchmarks' / 'evidence.py'
SMOKE = ['--configs', 'mean fusion', 'full DMAF-Net (+ DTM)', 'DTM without gradient scaling', '--settings', 'mr2468', '--seeds', '1', '2',
         '--epochs', '4', '--steps', '1', '--cases', '1', '--threads', '2', '--phantom-cases', '12']

def evidence(tmp_path, *args):
    return subprocess.run([sys.executable, str(EVIDENCE), '--work', str(tmp_path / 'work'), '--runs', str(tmp_path / 'runs'),
                           '--results', str(tmp_path / 'out' / 'evidence'), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)

def test_evidence_smoke(tmp_path):
    r = evidence(tmp_path, *SMOKE)
    assert r.returncode == 0, r.stderr[-3000:]
    s = json.loads((tmp_path / 'out' / 'evidence.json').read_text())
    configs = ('mean fusion', 'full DMAF-Net (+ DTM)', 'DTM without gradient scaling')
    assert {(x['config'], x['seed']) for x in s['runs']} == {(c, k) for c in configs for k in (1, 2)}
    for x in s['runs']: assert {'wt', 'tc', 'et', 'minutes', 'setting'} <= set(x) and 0 <= x['wt'] <= 100
    d = s['paired']['mr2468']['full DMAF-Net (+ DTM)']['WT']
    assert d['n'] == 2 and d['ci_low'] <= d['mean'] <= d['ci_high']                       # a paired t-interval
    assert len(s['paired']['mr2468']['full DMAF-Net (+ DTM)']['per_subset']) == 15
    assert set(s['dilution']['mr2468']) == set(configs)
    assert s['component_steps']['full DMAF-Net (+ DTM) − DTM without gradient scaling']['ET']['n'] == 2   # DTM taken apart
    b = s['dtm_beta_balance']['mr2468']                                               # whom DTM raises: β beside share and Dice
    assert b['runs'] == 2 and b['nominal_share'] == {'flair': 0.4, 't1ce': 0.6, 't1': 0.8, 't2': 0.2}
    assert b['weakness_from'] == 'mean fusion, same seed' and b['beta_falls_with_dice']['count'] <= b['beta_falls_with_dice']['runs'] <= 2
    assert 0 <= s['paired']['mr2468']['full DMAF-Net (+ DTM)']['ET']['wilcoxon_p'] <= 1
    assert s['precision']['mr2468']['ET']['n'] == 2 and s['precision']['mr2468']['ET']['half_width'] >= 0
    assert 'mr2468' in s['dtm_beta_max_abs_dev'] and s['plateau']
    gap = s['full_minus_mean_along_training']['mr2468']                          # full − mean along training, paired
    assert gap and all(v['n'] == 2 and v['ci_low'] <= v['mean'] <= v['ci_high'] for v in gap.values())
    g = s['grad_scaling']                                                             # k multiplies the encoder gradients
    for m, k in g['mean_k'].items(): assert math.isclose(g['ratio_on_off'][m], k, rel_tol=1e-2), (m, g)
    one = json.loads(next((tmp_path / 'runs').glob('mr2468__full-*s1.json')).read_text())
    assert set(one['dmaf_weights']) == {'enhancing', 'necrosis', 'edema', 'normal'}
    assert math.isclose(sum(one['dmaf_weights']['normal'].values()), 1, abs_tol=1e-3)  # weights sum to one
    assert len(one['unimodal_curve']) == 2 and 'dmaf_weights' not in json.loads(
        next((tmp_path / 'runs').glob('mr2468__mean-*s1.json')).read_text())
    work = tmp_path / 'work'                                                           # the result file is the record:
    assert list(work.glob('mr2468__*/log.csv')) and not list(work.glob('mr2468__*/checkpoints'))   # checkpoints are gone
    md = (tmp_path / 'out' / 'evidence.md').read_text()
    assert '| mr2468 | full DMAF-Net (+ DTM) | 2 |' in md and (tmp_path / 'out' / 'evidence_paired.png').is_file()
    # a second call finds every run finished; the report rebuilds from the result files alone
    done = {p: p.stat().st_mtime_ns for p in (tmp_path / 'runs').glob('*.json')}
    (tmp_path / 'out' / 'evidence.md').unlink()
    r = evidence(tmp_path, *SMOKE)
    assert r.returncode == 0 and {p: p.stat().st_mtime_ns for p in done} == done
    r = evidence(tmp_path, '--report-only')
    assert r.returncode == 0 and (tmp_path / 'out' / 'evidence.md').is_file()

def test_evidence_rejects_unknown_names(tmp_path):
    r = evidence(tmp_path, '--configs', 'no such thing')
    assert r.returncode != 0 and 'unknown configurations' in r.stderr

def test_seeds_for_is_the_fewest_seeds_reaching_the_width():
    sys.path.insert(0, str(ROOT / 'benchmarks'))
    import numpy as np
    from scipy import stats
    from evidence_report import seeds_for, t_interval
    t = t_interval(np.random.default_rng(0).normal(-5, 9, 30))
    n = seeds_for(t['sd'], 2.)
    half = lambda k: stats.t.ppf(0.975, k - 1) * t['sd'] / np.sqrt(k)
    assert half(n) <= 2 < half(n - 1) and math.isclose(half(30), (t['ci_high'] - t['ci_low']) / 2, abs_tol=2e-3)
    assert seeds_for(float('nan')) is None and seeds_for(1e6) is None

def test_an_unfinished_stage_is_held_back_and_fixed_analyses_wait():
    "A report rebuilt mid-stage leaves the stage's runs out; a fixed analysis reports only once all its seeds are in."
    sys.path.insert(0, str(ROOT / 'benchmarks'))
    from evidence_report import BASELINE, FULL, fixed_analyses, hold_back
    run = lambda c, k, v: dict(setting='mr2468', config=c, seed=k, wt=v, tc=v, et=v)
    done = [run(c, k, 50. - (c == FULL) * (k % 3)) for k in range(1, 5) for c in (BASELINE, FULL)]
    stage = {'stage': ('mr2468', (BASELINE, FULL), 5, 6)}
    other = run('DMAF', 6, 0.)                                   # another configuration's seed 6 is no part of the stage
    kept, st = hold_back(done + [run(BASELINE, 5, 10.), run(FULL, 5, 90.), other], stage)
    assert kept == done + [other] and st['stage'] == dict(landed=2, planned=4, held_back=True)
    kept, st = hold_back(done + [run(c, k, 40.) for k in (5, 6) for c in (BASELINE, FULL)], stage)
    assert len(kept) == 12 and not st['stage']['held_back']
    fa = fixed_analyses(done, {'first': (1, 4), 'longer': (1, 6)})
    assert fa['first']['status'] == 'complete' and fa['first']['WT']['n'] == 4 and math.isclose(fa['first']['WT']['mean'], -1.0)
    assert fa['longer'] == dict(first_seed=1, last_seed=6, planned=6, paired=4, status='waiting')
