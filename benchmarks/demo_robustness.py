"""Does the demo meet its quality targets whatever the seed? Candidate budgets × seeds, as benchmarks/demo_robustness.md.

    .venv/bin/python benchmarks/demo_robustness.py --threads 1     # run what is missing, then report (resumable)
    .venv/bin/python benchmarks/demo_robustness.py --report-only   # report the trials that finished

`make demo` runs one seed, and its scores move between machines and thread counts (float rounding, amplified by a short
training run), so one run meeting WT ≥ 0.85 does not show that the budget meets it. Here each candidate budget runs the
demo's notebook (as `demo_budget.py` does) under several run seeds — the seed of weights, sampling order and augmentation;
phantom, split and masks stay fixed — as a stand-in for those perturbations. The candidates and seeds were fixed before
any trial ran; trials run seed by seed, every candidate per seed, so an interrupted study leaves the candidates with
equal counts. Decided before any trial beyond the first (5 epochs, seed 1037) had finished: the preset moves to 6 epochs
only if 5 epochs misses a target on some seed and 6 epochs misses none; otherwise it stays (6 epochs costs a fifth more
training time, and the time target is the one already missed).

Round 2 (session 13, fixed before any of its trials ran): the first `make demo` at 6 epochs on a clean clone, 2 threads,
missed WT (0.726; the same seed scored 0.941 at 1 thread) and took 11.2 min on an AVX2-only EPYC, so 6 epochs is neither
robust nor within the time target. A 64×64 crop's step took about 0.55× an 80×96 crop's here (1 thread beside a worker, 30 steps each, twice; noisy:
1.76–2.66 against 1.06–1.52 steps/s), so
round 2 buys more, cheaper steps with more tumour in them: 64×64 crops, half of them centred on tumour, 8 or 10 epochs.
Rule: the preset takes the cheaper round-2 candidate that meets both targets on every seed at 1 thread and on seed 1037
at 2 threads (the demo's own run); if neither does, it stays at 6 epochs of 80×96. Run order changed after the first
8-epoch trial (seed 1037 at 1 thread: WT 0.918; the 10-epoch trial of that seed was started, then stopped unfinished
and its folder removed), the rule unchanged: a 10-epoch
trial decides nothing while the cheaper 8 epochs meets both targets, so 8 epochs runs first on every seed (`--only 2`),
the 2-thread check goes to its own work folder and report (`--seeds 1037 --threads 2 --work runs/demo_robustness_t2
--out benchmarks/demo_robustness_t2`), and 10 epochs runs only where 8 epochs misses. Outcome: 8 epochs met both
targets on seeds 1037–1040 at 1 thread and on seed 1037 at 2 threads, so the preset moved to it and no 10-epoch trial
finished. The demo's own run at the new preset (`make demo`, clean clone, seed 1037, 2 threads) then scored WT 0.792:
at 2 threads a run does not repeat from its seed (`repeat_check.py`), so one 2-thread trial per candidate is one draw.

Round 3 (session 15, fixed before any of its trials ran). With deterministic=True (the preset since 1cb7a1e) a 2-thread
run repeats on a machine, and the demo's own run at 8 epochs of 64×64 scored WT 0.832 on this VM: the 2 mm budget misses
WT at 2 threads and takes 9.8 min here, where 10 min on the Xeon is about 8 here (the Xeon ran ~1.8× the fast EPYC, this
AVX2-only EPYC ~1.4×). Evaluation of the 6 test cases took 2.0 of those minutes (whole 99×117 slices, 95 of them, 15
subsets) and phantom + validation about 1. Round 3 moves the demo to the 3 mm phantom (the study's spacing: a case
is about 66×78×63, so a 64×64 crop holds nearly a whole slice, 2.25× the 2 mm crop's area, and evaluation has ~0.3×
the voxels), at three budgets: 8 epochs at lr 2e-3 and at lr 4e-3, and 12 epochs at lr 2e-3 (about the steps of the
2 mm preset). Trials run at 2 threads (the demo's own setting; workers paused), seeds 1037 and 1038, then 1039 if the
session has time, seed by seed, every candidate per seed (`--only 4 5 6 --threads 2 --work runs/demo_robustness_r3
--out benchmarks/demo_robustness_r3`). Rule: the preset takes the cheapest (fewest steps, then lr 2e-3) round-3
candidate that meets both targets on every seed run; if none does, the preset stays as it is. Outcome
(`demo_robustness_r3.md`, seeds 1037–1039): all three met both targets on every seed (WT 0.871–0.951 at 8 epochs and
lr 2e-3, 0.934–0.944 at lr 4e-3, 0.922–0.972 at 12 epochs; notebook 3.8–4.2 min at 8 epochs), so the preset moved to
the 3 mm phantom at 8 epochs and lr 2e-3.
"""
import argparse, sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'benchmarks'))
from provenance import provenance, write_json, write_text
from demo_budget import budget, run_trial, table, trial_row

CANDIDATES = {   # label → overrides of the phantom preset
    '5 epochs of 80×96 (the preset 2026-12-04 to 12-06)': budget((80, 96), 5, 2e-3, 3),
    '6 epochs of 80×96 (the preset on 2026-12-06 until round 2)': budget((80, 96), 6, 2e-3, 3),
    '64×64, foreground 1/2, 8 epochs, validation every 4 (the preset since round 2)': budget((64, 64), 8, 2e-3, 4, 0.5),
    '64×64, foreground 1/2, 10 epochs, validation every 5': budget((64, 64), 10, 2e-3, 5, 0.5),
    '3 mm, 64×64, foreground 1/2, 8 epochs, lr 2e-3, validation every 4': budget((64, 64), 8, 2e-3, 4, 0.5, phantom_spacing=3.0),
    '3 mm, 64×64, foreground 1/2, 8 epochs, lr 4e-3, validation every 4': budget((64, 64), 8, 4e-3, 4, 0.5, phantom_spacing=3.0),
    '3 mm, 64×64, foreground 1/2, 12 epochs, lr 2e-3, validation every 4': budget((64, 64), 12, 2e-3, 4, 0.5, phantom_spacing=3.0),
}
SEEDS = (1037, 1038, 1039, 1040)
WT_TARGET, ET_TARGET = 0.85, 0.15

def trials(work:Path, seeds=SEEDS):
    "(candidate index, label, seed, run folder, overrides), in the order they run: seed by seed, every candidate per seed."
    for seed in seeds:
        for i, (label, overrides) in enumerate(CANDIDATES.items()):
            yield i, label, seed, work / f'c{i}_s{seed}', overrides | dict(seed=seed)

def summary(df:pd.DataFrame)->pd.DataFrame:
    "Per candidate: seeds run, how many met each target, WT's range and median, the median time."
    g = df.groupby('candidate', sort=False)
    return pd.DataFrame({'seeds': g.size(),
                         'WT ≥ 0.85': g['wt_all'].apply(lambda s: int((s >= WT_TARGET).sum())),
                         'ET gain ≥ 0.15': g['et_gain'].apply(lambda s: int((s >= ET_TARGET).sum())),
                         'WT min': g['wt_all'].min().round(3), 'WT median': g['wt_all'].median().round(3),
                         'WT max': g['wt_all'].max().round(3), 'ET gain min': g['et_gain'].min().round(3),
                         'notebook min (median)': g['notebook_min'].median().round(2)}).reset_index()

def write(rows:list[dict], out:Path, threads:int, note:str=''):
    meta = provenance(threads=threads)
    df = pd.DataFrame(rows); summ = summary(df)
    write_json(out.with_suffix('.json'), dict(meta=meta, seeds=list(SEEDS), candidates=CANDIDATES, trials=rows,
                                              summary=summ.to_dict('records')))
    keep = ['candidate', 'seed', 'steps', 'steps_per_s', 'train_min', 'notebook_min', 'val_mean_last', 'wt_all', 'et_gain']
    lines = ['# The demo\'s targets across seeds', '',
             f"{meta['machine']}; torch {meta['torch']}, {threads} thread(s) per trial; commit {meta['commit']}; {meta['date']}. "
             f"Made by `benchmarks/demo_robustness.py`. Each trial is the run notebook as `make demo` executes it with the "
             f"candidate's crops, epochs, lr and validation cadence (validation on 2 cases; the best checkpoint evaluated on "
             f"the 6 test cases under 15 subsets), with the run seed set to one of {', '.join(str(s) for s in sorted(df.seed.unique()))}; the phantom, split and "
             f"masks are the same for every trial. Targets: WT Dice with all four modalities ≥ {WT_TARGET}, ET gain of T1ce "
             f"≥ {ET_TARGET}." + (f' {note}' if note else ''), '',
             '**Per candidate**', '', *table(summ), '', '**Every trial**', '', *table(df[keep]), '',
             'Seeds stand in for what moves a run between machines and thread counts; they are not the same perturbation. '
             f'A few seeds bound how often a target fails only roughly (0 failures in {len(df) and df.seed.nunique()} seeds is '
             f'compatible with a failure rate of up to {100 * (1 - 0.025 ** (1 / max(1, df.seed.nunique()))):.0f} %, 95 % '
             'Clopper–Pearson). Times are comparable within this report only.']
    write_text(out.with_suffix('.md'), '\n'.join(lines) + '\n')
    print(out.with_suffix('.md').read_text())

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--work', default=str(ROOT / 'runs' / 'demo_robustness'))
    ap.add_argument('--out', default=str(ROOT / 'benchmarks' / 'demo_robustness'))
    ap.add_argument('--report-only', action='store_true', help="report the finished trials; run nothing")
    ap.add_argument('--note', default='', help='a sentence on how the trials ran (load, machine state)')
    ap.add_argument('--seeds', type=int, nargs='+', default=list(SEEDS), help='run and report only these of SEEDS')
    ap.add_argument('--only', type=int, nargs='+', help='run only these candidates (indices into CANDIDATES); report all')
    a = ap.parse_args()
    rows = []
    for i, label, seed, run, overrides in trials(Path(a.work), [s for s in SEEDS if s in a.seeds]):
        if not (run / 'targets.json').is_file():
            if a.report_only or (a.only is not None and i not in a.only): continue
            run_trial(run, overrides, a.threads)
        rows.append(dict(candidate=label, seed=seed) | {k: v for k, v in trial_row(label, run).items() if k != 'trial'})
        write(rows, Path(a.out), a.threads, a.note)
    if not rows: print(f"no finished trial under {a.work}")

if __name__ == '__main__': main()
