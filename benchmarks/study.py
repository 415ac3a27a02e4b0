"""The phantom study (issue 8): each configuration of the ablation, trained with several seeds at one fixed budget on the
built-in phantom with mr2468 masks, then scored on the test cases under all 15 modality subsets.

    .venv/bin/python benchmarks/study.py                                   # 6 configurations × 2 seeds, 3 epochs each
    .venv/bin/python benchmarks/study.py --seeds 1 --epochs 1 --steps 3 --eval-patch whole \\
        --work /tmp/study --results /tmp/study/study                        # smoke: a few steps per run
    .venv/bin/python benchmarks/study.py --report-only                     # redo the tables from the finished runs

The configurations are those of the step-time table (`bench_ablation_steps.CONFIGS`): mean and concat fusion, DMAF,
DMAF + relation distillation (CCA, MAA), + prototype distillation, full DMAF-Net (+ DTM). Every run starts from the
`phantom` preset (2D axial slices, batch 8, 96×112 crops, base width 8, lr 1e-3, poly decay) on the same data: the
demo's 24-case 2 mm phantom, its seeded split and the mr2468 masks of its training cases (mask seed 1037). The budget
is the same for every run: `--epochs` passes over the training slices and no validation, so the checkpoint scored is
the last one (`last.pt`) and no run is chosen by looking at data. The seed changes the weights, the slice order and
the augmentation; the data, split and masks stay fixed.

Resumable: a run whose `result.json` exists is skipped, an interrupted one continues from its `last.pt`. Run folders
go to `--work` (git-ignored `runs/study`); the tables to `--results` + `.md`/`.json`/`.png`.
"""
from __future__ import annotations
import argparse, json, re, subprocess, sys, time, warnings
from datetime import datetime, timezone
from pathlib import Path
import numpy as np, pandas as pd, torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'benchmarks')); sys.path.insert(0, str(ROOT))
from bench_ablation_steps import CONFIGS
from bench_train import machine
from dmafnet.config import preset
from dmafnet.train import train, load_model
from dmafnet.evaluate import evaluate, find_split

REGIONS = ('WT', 'TC', 'ET')

def slug(name:str)->str:
    "A folder name for a configuration, e.g. 'DMAF + relation (CCA, MAA)' → 'dmaf-relation-cca-maa'."
    return re.sub(r'[^a-z0-9]+', '-', name.lower()).strip('-')

def run_dir(work:Path, name:str, seed:int)->Path:
    "The run folder of configuration `name` with `seed`."
    return work / f'{slug(name)}_s{seed}'

def phantom_data(work:Path, seed:int)->Path:
    "The demo's phantom (the preset's cases, spacing and data seed) preprocessed once into `work/data/cache`, split seeded by `seed`."
    from dmafnet.phantom import make_phantom
    from dmafnet.data import preprocess_dataset
    p = preset('phantom')
    cache = work / 'data' / 'cache'
    if not (cache / 'cases.csv').is_file():
        make_phantom(work / 'data' / 'raw', n_cases=p.phantom_cases, seed=p.phantom_seed, spacing=p.phantom_spacing)
        preprocess_dataset(work / 'data' / 'raw', cache, split_seed=seed, verbose=False)
    return cache

def run_one(name:str, seed:int, cache:Path, work:Path, a)->dict:
    "Train one configuration with one seed (or resume it), score `last.pt` on the test cases; the result record."
    out = run_dir(work, name, seed)
    done = out / 'result.json'
    if done.is_file(): return json.loads(done.read_text())
    extra = dict(steps_per_epoch=a.steps) if a.steps else {}
    cfg = preset('phantom', data=str(cache), out=str(out), seed=seed, epochs=a.epochs, val_every=0,
                 threads=a.threads, progress=False, **extra, **CONFIGS[name])
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        train(cfg, resume=(out / 'checkpoints' / 'last.pt').is_file())
    t1 = time.perf_counter()
    model, trained = load_model(out / 'checkpoints' / 'last.pt')
    names = find_split('test', cache)[:a.cases or None]
    patch = trained.patch_size if a.eval_patch == 'train' else None   # None: whole slices, padded to multiples of 16
    ev = evaluate(model, names, data_dir=cache, patch_size=patch, overlap=0.5, progress=False)
    t2 = time.perf_counter()
    per = ev.per_subset()
    cols = [f'dice_{r}' for r in REGIONS]
    mean = ev.mean()
    result = dict(config=name, seed=seed, epochs=a.epochs, steps_per_epoch=a.steps, eval_patch=a.eval_patch, test_cases=names,
                  train_minutes=round((t1 - t0) / 60, 2), eval_minutes=round((t2 - t1) / 60, 2),
                  mean={r: round(float(mean[f'dice_{r}']), 4) for r in REGIONS},
                  per_subset=[dict(subset=s, **{r: round(float(v), 4) for r, v in zip(REGIONS, row)})
                              for s, row in zip(per['subset'], per[cols].values)])
    dtm = out / 'dtm.csv'
    if dtm.is_file():
        h = pd.read_csv(dtm); last = h[h.epoch == h.epoch.max()]
        result['final_beta'] = {str(m): round(float(b), 3) for m, b in zip(last.modality, last.beta)}
    ev.write(out / 'evaluation', out / 'checkpoints' / 'last.pt', trained.to_dict(), title=f'{name}, seed {seed}')
    tmp = done.with_suffix('.tmp'); tmp.write_text(json.dumps(result, indent=1)); tmp.replace(done)
    return result

def run_means(results:list[dict])->tuple[pd.DataFrame, list[str]]:
    "One row per run (config, seed, 15-subset mean Dice per region) and the configurations present, in study order."
    df = pd.DataFrame([dict(config=r['config'], seed=r['seed'], **r['mean']) for r in results])
    return df, [c for c in CONFIGS if c in set(df.config)]

def summarise(results:list[dict])->pd.DataFrame:
    "One row per configuration: mean and standard deviation over seeds of the 15-subset mean Dice, and Δ to the first."
    df, order = run_means(results)
    g = df.groupby('config', sort=False)
    out = pd.DataFrame({'seeds': g.seed.count()})
    for r in REGIONS: out[f'{r}_mean'], out[f'{r}_sd'] = g[r].mean(), g[r].std(ddof=1)
    base = df[df.config == order[0]].set_index('seed')
    for r in REGIONS:  # paired by seed: the same seed gives the same slice order and augmentation
        d = df.set_index('seed').join(base[r].rename('base'))
        out[f'{r}_delta'] = (d[r] - d['base']).groupby(d.config).mean()
    return out.loc[order]

def step_times()->dict:
    "Relative step time per configuration from the committed step-time table (2D), if present."
    f = ROOT / 'benchmarks' / 'ablation_steps_2d.json'
    if not f.is_file(): return {}
    return {r['config']: r['relative_to_mean'] for r in json.loads(f.read_text())['rows']}

def plot(results:list[dict], path:Path):
    "Per region: each seed's 15-subset mean Dice per configuration (dots) and their mean (tick)."
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    df, order = run_means(results)
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2), sharey=False)
    for ax, reg in zip(axes, REGIONS):
        means = df.groupby('config')[reg].mean().reindex(order)
        ax.plot(means.values * 100, range(len(order)), '|', color='#d62728', ms=16, mew=2.5, label='mean over seeds')
        for i, c in enumerate(order):
            v = df[df.config == c][reg].values * 100
            ax.plot(v, np.full(len(v), i), 'o', color='#08519c', ms=5, alpha=.8, label='one seed' if i == 0 else None)
        lo = max(0, df[reg].min() * 100 - 5)
        ax.set(title=f'{reg}: mean Dice over 15 subsets', xlabel='Dice (%)', xlim=(lo, min(100, df[reg].max() * 100 + 3)))
        ax.set_yticks(range(len(order))); ax.set_yticklabels(order if ax is axes[0] else [])
        ax.set_ylim(len(order) - .5, -.5); ax.grid(axis='x', alpha=.3)
    axes[0].legend(loc='upper left', fontsize=8)
    fig.suptitle('Phantom study (mr2468 masks, fixed budget): 15-subset mean Dice per configuration', fontsize=11)
    fig.tight_layout(); fig.savefig(path, dpi=110); plt.close(fig)

def budget_of(results:list[dict])->dict:
    "The budget and evaluation every run shares (a table mixing budgets would compare nothing), or a ValueError."
    keys = ('epochs', 'steps_per_epoch', 'eval_patch')
    seen = {tuple(r.get(k) for k in keys) for r in results}
    if len(seen) > 1: raise ValueError(f"study: the runs differ in {', '.join(keys)}: {sorted(seen, key=str)}; "
                                       "use one --work folder per budget")
    return dict(zip(keys, seen.pop()))

def write_tables(results:list[dict], prefix:Path, a):
    "The study's Markdown table, JSON (every run, per subset) and plot."
    s, rel, b = summarise(results), step_times(), budget_of(results)
    commit = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    meta = dict(date=datetime.now(timezone.utc).isoformat(timespec='seconds'), commit=commit, torch=torch.__version__,
                machine=machine(), threads=a.threads, **b, test_cases=len(results[0]['test_cases']))
    prefix.parent.mkdir(parents=True, exist_ok=True)
    Path(f'{prefix}.json').write_text(json.dumps(dict(meta=meta, runs=results), indent=1))
    plot(results, Path(f'{prefix}.png'))
    seeds = sorted({r['seed'] for r in results})
    minutes = np.mean([r['train_minutes'] + r['eval_minutes'] for r in results])
    steps = f" of {b['steps_per_epoch']} steps" if b['steps_per_epoch'] else ''
    p = preset('phantom'); patch = '×'.join(map(str, p.patch_size))
    evaluation = ('whole slices' if b['eval_patch'] == 'whole' else f'sliding windows of the {patch} training patch, 50 % overlap')
    fmt = lambda m, sd: f'{100 * m:.1f} ± {100 * sd:.1f}' if np.isfinite(sd) else f'{100 * m:.1f}'
    lines = ['# The phantom study', '',
             f"{meta['date'][:10]} · commit {commit} · {meta['machine']} · torch {torch.__version__} · {a.threads} threads", '',
             f"Each configuration trained with seeds {', '.join(map(str, seeds))} at the same budget "
             f"({b['epochs']} epochs{steps} of the `phantom` preset: 2D, batch {p.batch_size}, {patch} crops; "
             f"no validation, `last.pt` scored) on the demo's phantom with mr2468 masks, then scored on its "
             f"{meta['test_cases']} test cases under all 15 subsets ({evaluation}). Dice (%): mean over the 15 subsets of the per-subset "
             f"mean over cases; ± the standard deviation over seeds; Δ: the mean difference to {s.index[0]} with the same "
             f"seed (points). Step: training step time relative to mean fusion (`ablation_steps_2d.md`). "
             f"{len(results)} run{'s' * (len(results) > 1)}, {minutes:.1f} min each on average (training + evaluation).", '',
             '| configuration | WT | TC | ET | Δ WT | Δ TC | Δ ET | step |', '|---|---|---|---|---|---|---|---|']
    for c, r in s.iterrows():
        lines.append(f"| {c} | " + ' | '.join(fmt(r[f'{g}_mean'], r[f'{g}_sd']) for g in REGIONS) + ' | '
                     + ' | '.join(f"{100 * r[f'{g}_delta']:+.1f}" for g in REGIONS)
                     + f" | {f'{rel[c]:.2f}×' if c in rel else '–'} |")
    lines += ['', f'![Per-seed results]({prefix.name}.png)', '', 'Made by `benchmarks/study.py`; every run with its '
              'per-subset scores is in `study.json`; what the table shows and does not show: `study_reading.md`.', '']
    Path(f'{prefix}.md').write_text('\n'.join(lines))
    return '\n'.join(lines)

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--configs', nargs='*', default=list(CONFIGS), help='configuration names (default: all six)')
    ap.add_argument('--seeds', nargs='*', type=int, default=[1037, 1038])
    ap.add_argument('--epochs', type=int, default=3, help="epochs per run (the committed table's budget: 3, half the demo's)")
    ap.add_argument('--steps', type=int, default=None, help='optimiser steps per epoch (default: one pass; for smoke runs)')
    ap.add_argument('--cases', type=int, default=None, help='score at most this many test cases (default: all)')
    ap.add_argument('--eval-patch', choices=('train', 'whole'), default='train',
                    help="'train': sliding windows of the training patch, 50 %% overlap (the demo's protocol); 'whole': whole slices")
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--work', default=str(ROOT / 'runs' / 'study'), help='run folders')
    ap.add_argument('--results', default=str(ROOT / 'benchmarks' / 'study'), help='tables: this path + .md/.json/.png')
    ap.add_argument('--report-only', action='store_true', help='only rewrite the tables from finished runs')
    a = ap.parse_args()
    unknown = set(a.configs) - set(CONFIGS)
    if unknown: ap.error(f'unknown configurations {sorted(unknown)}; known: {list(CONFIGS)}')
    torch.set_num_threads(a.threads)
    work = Path(a.work)
    results = []
    if not a.report_only: cache = phantom_data(work, seed=preset('phantom').seed)
    for seed in a.seeds:          # seeds outermost: a partial study still compares every configuration
        for name in a.configs:
            f = run_dir(work, name, seed) / 'result.json'
            if a.report_only:
                if f.is_file(): results.append(json.loads(f.read_text()))
                continue
            r = run_one(name, seed, cache, work, a); results.append(r)
            print(f"{name:32s} seed {seed}: WT {r['mean']['WT']:.3f} TC {r['mean']['TC']:.3f} ET {r['mean']['ET']:.3f} "
                  f"({r['train_minutes']:.1f} + {r['eval_minutes']:.1f} min)", flush=True)
    if not results: raise SystemExit(f'study: no finished runs in {work}')
    print(write_tables(results, Path(a.results), a))

if __name__ == '__main__': main()
