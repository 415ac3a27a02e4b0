"""The demo's budget: candidate `phantom` preset settings, each run as `make demo` runs it, timed and scored, as benchmarks/demo_budget.md.

    .venv/bin/python benchmarks/demo_budget.py --threads 1                 # run every trial below, then report
    .venv/bin/python benchmarks/demo_budget.py --collect /tmp/demo_base:baseline /tmp/demo_e2:'80×96, 5 ep, lr 3e-3'

A trial executes the run notebook (`nbs/runs/train.ipynb`, as `make demo` does) with the trial's overrides on top
of the preset, so its minutes include training, validation, evaluation on the test cases and the report. The
phantom, its split and masks are the same for every trial; one seed (the preset's). `--collect` reports run folders
that already ran (their `config.yaml`, `log.csv`, `targets.json`). Compare trials of one report only: they ran on one
machine under the same load.
"""
import argparse, json, subprocess, sys
from pathlib import Path

import pandas as pd, yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'benchmarks'))
from provenance import provenance, write_json, write_text

def budget(patch, epochs, lr, val_every, foreground_prob=1/3, **more)->dict:
    "Every setting a trial varies, given explicitly (so a trial means the same whatever the preset is now); `more`: further fields."
    return dict(patch_size=list(patch), epochs=epochs, lr=lr, val_every=val_every, foreground_prob=foreground_prob, **more)

TRIALS = {   # label → overrides of the phantom preset
    '96×112, 6 epochs, lr 1e-3, validation every 2 (the preset until 2026-12-04)': budget((96, 112), 6, 1e-3, 2),
    '80×96, 4 epochs, lr 1e-3, validation every 2': budget((80, 96), 4, 1e-3, 2),
    '80×96, 5 epochs, lr 3e-3, validation every 3': budget((80, 96), 5, 3e-3, 3),
    '80×96, 5 epochs, lr 5e-3, foreground 1/2, validation every 3': budget((80, 96), 5, 5e-3, 3, 0.5),
    '80×96, 6 epochs, lr 2e-3, validation every 3': budget((80, 96), 6, 2e-3, 3),
    '80×96, 5 epochs, lr 2e-3, validation every 3 (the preset 2026-12-04 to 12-06)': budget((80, 96), 5, 2e-3, 3),
}

def run_trial(out:Path, overrides:dict, threads:int):
    "Execute the run notebook into `out`, as `make demo` does."
    out.mkdir(parents=True, exist_ok=True)   # papermill writes its output notebook there before the first cell
    subprocess.run([sys.executable, '-m', 'papermill', str(ROOT / 'nbs' / 'runs' / 'train.ipynb'), str(out / 'report.ipynb'),
                    '-k', 'python3', '--no-progress-bar', '-p', 'preset', 'phantom', '-p', 'out', str(out), '-p', 'dims', '2',
                    '-p', 'threads', str(threads), '-p', 'targets', 'True', '-p', 'progress', 'lines',
                    '-y', yaml.safe_dump({'overrides': overrides})], check=True, cwd=ROOT)

def trial_row(label:str, run:Path)->dict:
    "One trial's settings, time and quality from its run folder."
    cfg = yaml.safe_load((run / 'config.yaml').read_text())
    log, t = pd.read_csv(run / 'log.csv'), json.loads((run / 'targets.json').read_text())
    val = log['val_mean'].dropna() if 'val_mean' in log else pd.Series(dtype=float)
    return dict(trial=label, patch=' × '.join(map(str, cfg['patch_size'])), epochs=cfg['epochs'], lr=cfg['lr'],
                val_every=cfg['val_every'], foreground_prob=round(cfg['foreground_prob'], 3), steps=int(log['steps'].sum()),
                steps_per_s=round(float(log['steps_per_s'].median()), 2), train_min=round(float(log['time_s'].sum()) / 60, 2),
                notebook_min=t['minutes'], val_mean_last=round(float(val.iloc[-1]), 3) if len(val) else None,
                wt_all=t['wt_all_modalities'], et_gain=t['et_gain'])

def table(df:pd.DataFrame)->list[str]:
    "`df` as the lines of a Markdown table (None as an empty cell)."
    return ['| ' + ' | '.join(map(str, df.columns)) + ' |', '|' + '---|' * len(df.columns),
            *('| ' + ' | '.join('' if v is None else str(v) for v in r) + ' |' for r in df.itertuples(index=False))]

def write(rows:list[dict], out:Path, threads:int, note:str=''):
    base = rows[0]['notebook_min']
    for r in rows: r['time_vs_first'] = round(r['notebook_min'] / base, 3)
    meta = provenance(threads=threads)
    write_json(out.with_suffix('.json'), dict(meta=meta, trials=rows))
    df = pd.DataFrame(rows)
    lines = ['# The demo\'s budget: candidate phantom-preset settings', '',
             f"{meta['machine']}; torch {meta['torch']}, {threads} thread(s) per trial; commit {meta['commit']}; {meta['date']}. "
             'Each trial is the run notebook as `make demo` executes it (training, validation, evaluation of the best '
             'checkpoint on the 6 test cases under 15 subsets, report), one seed, the same phantom, split and masks. '
             'Targets: WT Dice with all four modalities ≥ 0.85, ET gain of T1ce ≥ 0.15. Made by `benchmarks/demo_budget.py`.'
             + (f' {note}' if note else ''), '',
             *table(df), '',
             '`notebook_min`: first cell to last; `time_vs_first`: against the first row, measured under the same load. '
             'One seed per trial: a difference of a few Dice points between trials is within what a second seed could move.']
    write_text(out.with_suffix('.md'), '\n'.join(lines) + '\n')
    print(out.with_suffix('.md').read_text())

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--work', default=str(ROOT / 'runs' / 'demo_budget'))
    ap.add_argument('--collect', nargs='*', default=None, help="FOLDER:LABEL of runs already made (no training)")
    ap.add_argument('--out', default=str(ROOT / 'benchmarks' / 'demo_budget'))
    ap.add_argument('--note', default='', help='a sentence on how the trials ran (load, the package they ran with)')
    a = ap.parse_args()
    if a.collect is not None:
        pairs = [c.split(':', 1) for c in a.collect]
        rows = [trial_row(label, Path(folder)) for folder, label in pairs]
    else:
        rows = []
        for i, (label, overrides) in enumerate(TRIALS.items()):
            run = Path(a.work) / f'trial{i}'
            if not (run / 'targets.json').is_file(): run_trial(run, overrides, a.threads)
            rows.append(trial_row(label, run))
    write(rows, Path(a.out), a.threads, a.note)

if __name__ == '__main__': main()
