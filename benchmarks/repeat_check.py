"""Does a training run repeat from its seed? Two processes per setting, the same configuration, as benchmarks/repeat.md.

    .venv/bin/python benchmarks/repeat_check.py              # 12 steps of the phantom preset, 1 and 2 threads, ±deterministic
    .venv/bin/python benchmarks/repeat_check.py --steps 4    # smoke

`make demo` runs at 2 threads, and the demo's scores moved between runs of one seed on one machine. Here each setting
(torch threads, `deterministic`) trains the phantom preset for a few steps in two fresh processes from the same seed,
data and batches, and compares the total loss step by step: bit-identical, or the first step at which they part and
the largest relative difference. The median step time of each setting is reported too (steps after the first two),
so the cost of `deterministic=True` is measured in the same run. Data: a 6-case 2 mm phantom generated into a
temporary folder (as `bench_train.py` does).
"""
import argparse, json, statistics, subprocess, sys, tempfile, warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'benchmarks'))
SETTINGS = [dict(threads=1, deterministic=False), dict(threads=2, deterministic=False), dict(threads=2, deterministic=True)]

def worker(cache:str, out:str, threads:int, deterministic:bool, steps:int):
    "Train `steps` steps; print the total losses and step times as JSON."
    import torch
    from dmafnet.config import preset
    from dmafnet.train import Trainer
    from bench_train import timed_steps
    torch.set_num_threads(threads)
    cfg = preset('phantom', data=cache, out=out, progress=False, val_every=0, steps_per_epoch=steps, epochs=1,
                 device='cpu', threads=threads, deterministic=deterministic)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore'); trainer = Trainer(cfg)
    timed = list(timed_steps(trainer, steps))
    print(json.dumps(dict(losses=[float(log['loss']) for _, _, log in timed], times=[t for _, t, _ in timed])))

def compare(a:list, b:list)->dict:
    "Identical or not, the first differing step (1-based) and the largest relative difference."
    diff = [i for i, (x, y) in enumerate(zip(a, b)) if x != y]
    rel = max((abs(x - y) / max(abs(x), 1e-12) for x, y in zip(a, b)), default=0.)
    return dict(identical=not diff, first_differing_step=diff[0] + 1 if diff else None, max_rel_diff=float(f'{rel:.3g}'))

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--steps', type=int, default=12)
    ap.add_argument('--out', default=str(ROOT / 'benchmarks' / 'repeat'))
    ap.add_argument('--note', default='', help='a sentence on how it ran (load, machine state)')
    ap.add_argument('--worker', nargs=5, metavar=('CACHE', 'OUT', 'THREADS', 'DET', 'STEPS'), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        c, o, t, d, s = a.worker; return worker(c, o, int(t), d == '1', int(s))
    from bench_train import phantom_cache
    from provenance import provenance, write_json, write_text
    tmp = Path(tempfile.mkdtemp(prefix='repeat_check_')); cache = phantom_cache(tmp)
    rows = []
    for st in SETTINGS:
        runs = []
        for rep in range(2):
            res = subprocess.run([sys.executable, __file__, '--worker', str(cache), str(tmp / f"run_{st['threads']}_{int(st['deterministic'])}_{rep}"),
                                  str(st['threads']), '1' if st['deterministic'] else '0', str(a.steps)],
                                 capture_output=True, text=True, check=True, cwd=ROOT)
            runs.append(json.loads(res.stdout.strip().splitlines()[-1]))
        times = [t for r in runs for t in r['times'][2:]]
        rows.append(dict(st, steps=a.steps, **compare(runs[0]['losses'], runs[1]['losses']),
                         step_s=round(statistics.median(times), 4), losses=[r['losses'] for r in runs]))
        print(rows[-1]['threads'], rows[-1]['deterministic'], rows[-1]['identical'], rows[-1]['first_differing_step'], flush=True)
    meta = provenance(threads=max(s['threads'] for s in SETTINGS))
    out = Path(a.out)
    write_json(out.with_suffix('.json'), dict(meta=meta, rows=rows))
    base = next(r['step_s'] for r in rows if r['threads'] == 2 and not r['deterministic'])
    lines = ['# Does a training run repeat from its seed?', '',
             f"{meta['machine']}; torch {meta['torch']}; commit {meta['commit']}; {meta['date']}. Made by "
             f"`benchmarks/repeat_check.py`: the phantom preset (the demo's), {a.steps} training steps in two fresh "
             "processes per setting from the same seed, data and batches; total loss compared step by step."
             + (f' {a.note}' if a.note else ''), '',
             '| threads | deterministic | identical | first differing step | largest relative difference | step s (median) | step time vs 2 threads |',
             '|---|---|---|---|---|---|---|',
             *(f"| {r['threads']} | {r['deterministic']} | {'yes' if r['identical'] else 'no'} | {r['first_differing_step'] or '–'} | "
               f"{r['max_rel_diff']:g} | {r['step_s']} | {r['step_s'] / base:.2f} |" for r in rows), '',
             'A few steps show whether two runs part, not how far apart their final scores end; a short training run '
             'amplifies a difference in the last bits into a different model.']
    write_text(out.with_suffix('.md'), '\n'.join(lines) + '\n')
    print(out.with_suffix('.md').read_text())

if __name__ == '__main__': main()
