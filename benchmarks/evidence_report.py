"""The evidence study's report: evidence.json, evidence.md and its figures, from the per-run result files.

    .venv/bin/python benchmarks/evidence.py --report-only      # (calls `write_report`)

Statistics. A configuration's score is the mean over the 15 subsets of the per-subset mean Dice over the test
cases (points). Differences to `mean` fusion are paired by seed (the same seed gives the same sample order and
augmentation, and every run shares data, split and masks); the interval is Student's t 95 % interval of the
paired differences (n − 1 degrees of freedom). Nothing is selected by looking at test data: every run is scored
on its last checkpoint, every finished run enters, except the runs of a stage fixed in advance (`STAGES`) that has
not finished: they wait, out of every number, until its last run lands, so a report rebuilt mid-stage is no look.
The analyses fixed in advance (`FIXED`) are reported over their own seeds once those are all in.
"""
from __future__ import annotations
import json, sys
from datetime import datetime, timezone
from itertools import permutations
from pathlib import Path
import numpy as np, pandas as pd
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'benchmarks')); sys.path.insert(0, str(ROOT))
from provenance import git_commit, write_json, write_text
from bench_ablation_steps import CONFIGS as ABLATION

# the six configurations of the ablation, then four that take DTM apart (full DMAF-Net less one of DTM's actions)
NO_K, PAPER_PACE = 'DTM without gradient scaling', "DTM at the paper's pace"
NO_OMEGA, NO_GATE = 'DTM without ω', 'DTM without the gate'
_FULL = ABLATION['full DMAF-Net (+ DTM)']
CONFIGS = {**ABLATION,
           NO_K: dict(_FULL, dtm_kwargs=dict(grad_scaling=False)),       # k = 1; ω, g, β on the losses
           PAPER_PACE: dict(_FULL, dtm_kwargs=dict(schedule='paper')),   # one β update per epoch: β stays near 1
           NO_OMEGA: dict(_FULL, dtm_kwargs=dict(use_omega=False)),      # no inverse-frequency loss weights
           NO_GATE: dict(_FULL, dtm_kwargs=dict(use_gate=False))}        # every available modality's losses count, lagging or not

from dmafnet.core import BRATS_MODALITIES as MODALITIES
REGIONS = ('WT', 'TC', 'ET')
BASELINE, FULL = 'mean fusion', 'full DMAF-Net (+ DTM)'   # the reference and the whole method (names in CONFIGS)
SETTING_ORDER = ('pdt', 'mr2468', 'mr8825')
# which tumour tissue each region's DMAF weight is read in (the region's defining tissue in the phantom)
REGION_TISSUE = {'WT': 'edema', 'TC': 'necrosis', 'ET': 'enhancing'}

# Stages of the main study (`benchmarks/evidence_runs`) fixed in advance whose runs wait for their last run
# (`evidence_reading.md`): name → (setting, configurations, first seed, last seed). Until every run of a stage has landed
# its runs stay out of every table, figure and number, and `evidence.py` prints and commits them without their scores,
# so a report rebuilt (or a worker's closing report written) in the middle of a stage is not a look at it.
STAGES = {'stage 6 (precision extension)': ('mr2468', (BASELINE, FULL), 1101, 1166)}
# The main study's analyses of full DMAF-Net − mean fusion (mr2468) fixed in advance: name → (first, last) paired seed.
# Each is reported once all of its seeds are in, beside the others, so the confirmatory numbers stay reproducible after
# stage 6. Other folders (the 1200-step check, a GPU run, the smoke test) have neither stages nor fixed analyses.
FIXED = {'confirmatory (stage 5)': (1037, 1100), 'precision extension (stage 6)': (1037, 1166)}

def stage_runs(runs:list[dict], stage:tuple)->list[dict]:
    "The runs that belong to `stage` (its setting and configurations, within its seeds)."
    setting, configs, first, last = stage
    return [r for r in runs if r['setting'] == setting and r['config'] in configs and first <= r['seed'] <= last]

def hold_back(runs:list[dict], stages:dict=STAGES)->tuple[list[dict], dict]:
    "The runs outside unfinished `stages`, and per stage how many of its runs have landed and whether it is held back."
    kept, status = list(runs), {}
    for name, stage in stages.items():
        setting, configs, first, last = stage
        mine = stage_runs(runs, stage)
        landed = len({(r['config'], r['seed']) for r in mine}); planned = len(configs) * (last - first + 1)
        status[name] = dict(landed=landed, planned=planned, held_back=landed < planned)
        if landed < planned:
            held = {id(r) for r in mine}
            kept = [r for r in kept if id(r) not in held]
    return kept, status

def fixed_analyses(runs:list[dict], fixed:dict=FIXED, setting:str='mr2468')->dict:
    "Per analysis of `fixed`: full DMAF-Net − mean fusion per region over its seeds, or only how many are in while some are missing."
    rs = {(r['config'], r['seed']): r for r in runs if r['setting'] == setting}
    out = {}
    for name, (first, last) in fixed.items():
        seeds = [k for k in range(first, last + 1) if (FULL, k) in rs and (BASELINE, k) in rs]
        head = dict(first_seed=first, last_seed=last, planned=last - first + 1, paired=len(seeds))
        if len(seeds) < last - first + 1: out[name] = dict(head, status='waiting'); continue
        per = {reg: t_interval([rs[FULL, k][reg.lower()] - rs[BASELINE, k][reg.lower()] for k in seeds]) for reg in REGIONS}
        out[name] = dict(head, status='complete', **{reg: dict(d, half_width=round((d['ci_high'] - d['ci_low']) / 2, 3))
                                                     for reg, d in per.items()})
    return out

def load_runs(folder:Path)->list[dict]:
    "Every finished run's result, in a stable order; refused when the folder mixes budgets, test sets, devices or precisions (they must not be paired)."
    runs = [json.loads(p.read_text()) for p in sorted(Path(folder).glob('*.json'))]
    kinds = {json.dumps([r['budget'], r['test_cases'], r.get('device', 'cpu'), r.get('precision') or 'fp32']) for r in runs}
    if len(kinds) > 1: raise SystemExit(f'evidence: {folder} mixes runs of different budgets, test sets, devices or precisions: {sorted(kinds)}')
    keys = [(r['setting'], r['config'], r['seed']) for r in runs]
    if len(set(keys)) < len(keys): raise SystemExit(f'evidence: {folder} holds a (setting, configuration, seed) twice')
    return runs

def sig3(p)->float:
    "A p-value kept to 3 significant digits (rounding to decimals would print a small p as 0)."
    return float(f'{float(p):.3g}')

def sign_count(hits:int, n:int)->dict:
    "`hits` of `n` runs going one way, with the two-sided sign test's p (3 significant digits)."
    return dict(runs=int(n), count=int(hits), sign_p=sig3(stats.binomtest(int(hits), int(n)).pvalue))

def t_interval(d)->dict:
    "Mean and Student's t 95 % interval of paired differences (NaN bounds with fewer than two); also the median, the wins (d > 0), a two-sided sign test and Wilcoxon's signed-rank test (p to 3 significant digits)."
    d = np.asarray(d, float); n = len(d); m = float(d.mean()) if n else float('nan')
    signs = dict(median=round(float(np.median(d)), 2) if n else float('nan'), wins=int((d > 0).sum()), ties=int((d == 0).sum()),
                 sign_p=sign_count((d > 0).sum(), (d != 0).sum())['sign_p'] if (d != 0).any() else 1.0,
                 wilcoxon_p=sig3(stats.wilcoxon(d).pvalue) if (d != 0).sum() >= 2 else 1.0)
    if n < 2: return dict(mean=round(m, 3), ci_low=float('nan'), ci_high=float('nan'), n=n, sd=float('nan'), **signs)
    sd = float(d.std(ddof=1)); h = float(stats.t.ppf(0.975, n - 1) * sd / np.sqrt(n))   # 3 decimals: the tables round to 1, once
    return dict(mean=round(m, 3), ci_low=round(m - h, 3), ci_high=round(m + h, 3), n=n, sd=round(sd, 3), **signs)

def seeds_for(sd:float, half:float=2., most:int=10_000)->int|None:
    "The fewest paired seeds whose 95 % t-interval is at most ±`half` wide at this s.d. (None: more than `most`, or no s.d.)."
    if not np.isfinite(sd): return None
    n = next((k for k in range(2, most + 1) if stats.t.ppf(0.975, k - 1) * sd / np.sqrt(k) <= half), None)
    return n

def precision(paired_:dict, half:float=2.)->dict:
    "Per setting, for full DMAF-Net − mean fusion: per region the interval's half-width, the paired s.d. and `seeds_for` ±`half`."
    return {st: {reg: dict(n=d[reg]['n'], half_width=round((d[reg]['ci_high'] - d[reg]['ci_low']) / 2, 3), sd=d[reg]['sd'],
                           seeds_for_target=seeds_for(d[reg]['sd'], half)) for reg in REGIONS}
            for st, v in paired_.items() for d in [v.get(FULL)] if d and d[REGIONS[0]]['n'] >= 2}

def run_table(runs:list[dict])->pd.DataFrame:
    return pd.DataFrame([dict(config=r['config'], setting=r['setting'], seed=r['seed'], WT=r['wt'], TC=r['tc'], ET=r['et'],
                              minutes=r['minutes']) for r in runs])

def paired(runs:list[dict])->dict:
    "Per setting and configuration: per region (and per subset) the paired difference to `mean` fusion."
    out = {}
    for setting in SETTING_ORDER:
        rs = [r for r in runs if r['setting'] == setting]
        base = {r['seed']: r for r in rs if r['config'] == BASELINE}
        for config in [c for c in CONFIGS if c != BASELINE]:
            pairs = [(r, base[r['seed']]) for r in rs if r['config'] == config and r['seed'] in base]
            if not pairs: continue
            entry = {reg: t_interval([r[reg.lower()] - b[reg.lower()] for r, b in pairs]) for reg in REGIONS}
            entry['per_subset'] = {s: {reg: t_interval([r['per_subset'][s][reg] - b['per_subset'][s][reg] for r, b in pairs])
                                       for reg in REGIONS} for s in pairs[0][0]['per_subset']}
            out.setdefault(setting, {})[config] = entry
    return out

# what switching each part on buys: (configuration, the same without that part), all under mr2468
LADDER = (('DMAF', 'mean fusion'), ('DMAF + relation (CCA, MAA)', 'DMAF'),
          ('DMAF + relation + prototype', 'DMAF + relation (CCA, MAA)'), (FULL, 'DMAF + relation + prototype'),
          # DTM taken apart: its gradient scaling k, the size of its β moves, ω and the gate
          (FULL, NO_K), (NO_K, 'DMAF + relation + prototype'), (FULL, PAPER_PACE), (PAPER_PACE, 'DMAF + relation + prototype'),
          (FULL, NO_OMEGA), (NO_OMEGA, 'DMAF + relation + prototype'), (FULL, NO_GATE), (NO_GATE, 'DMAF + relation + prototype'))

def ladder(runs:list[dict], setting:str='mr2468')->dict:
    "Per step of `LADDER`: per region the paired (by seed) difference of the configuration to the one without the part."
    rs = {(r['config'], r['seed']): r for r in runs if r['setting'] == setting}
    out = {}
    for config, without in LADDER:
        seeds = sorted(k for c, k in rs if c == config and (without, k) in rs)
        if seeds: out[f'{config} − {without}'] = {reg: t_interval([rs[config, k][reg.lower()] - rs[without, k][reg.lower()]
                                                                   for k in seeds]) for reg in REGIONS}
    return out

def dilution(run:dict)->float:
    """Mean over regions and ordered pairs (X, Y) with X the more informative alone (higher Dice for the region) of
    Dice(X) − Dice(X+Y), in points: how much adding a less informative modality costs."""
    ps, vals = run['per_subset'], []
    for reg in REGIONS:
        for x, y in permutations(MODALITIES, 2):
            pair = '+'.join(m for m in MODALITIES if m in (x, y))
            if ps[x][reg] > ps[y][reg]: vals.append(ps[x][reg] - ps[pair][reg])
    return float(np.mean(vals))

def weight_correlation(runs:list[dict])->dict:
    """Per region: Pearson r between a modality's mean DMAF weight inside the region's tissue and its single-modality
    Dice for the region, pooled over the DMAF runs under mr2468 (4 points a run), and how many runs have r > 0 (sign test)."""
    out = {}
    for reg, tissue in REGION_TISSUE.items():
        w, d, per_run = [], [], []
        for r in runs:
            if r.get('dmaf_weights') and r['setting'] == 'mr2468':
                wr = [r['dmaf_weights'][tissue][m] for m in MODALITIES]; dr = [r['per_subset'][m][reg] for m in MODALITIES]
                w += wr; d += dr
                if np.std(wr) > 0 and np.std(dr) > 0: per_run.append(stats.pearsonr(wr, dr).statistic)
        if len(w) >= 3 and np.std(w) > 0 and np.std(d) > 0:
            rr, p = stats.pearsonr(w, d); pos = sign_count((np.asarray(per_run) > 0).sum(), len(per_run))
            out[reg] = dict(r=round(float(rr), 3), p=sig3(p), points=len(w), tissue=tissue,
                            runs_positive=f"{pos['count']}/{pos['runs']} (p {pos['sign_p']:.2g})" if per_run else '–')
    return out

def beta_balance(runs:list[dict], config:str=FULL)->dict:
    """Whom does DTM raise: the rare modality or the weak one? Per setting, over the runs of `config` (the run is the
    unit): per run, Spearman ρ over its 4 modalities between final β and (a) the modality's nominal share of training
    cases (1 − its missing rate; not under PDT, where all are 1) and (b) its weakness, measured independently of DTM as
    the same seed's mean-fusion single-modality Dice (mean over regions; the run's own where that run is missing).
    Reported: how many runs have ρ > 0 (share) and ρ < 0 (Dice), with a two-sided sign test, and the mean final β."""
    from dmafnet.missing import parse_setting
    single = lambda r: np.array([np.mean([r['per_subset'][m][reg] for reg in REGIONS]) for m in MODALITIES])
    out = {}
    for setting in SETTING_ORDER:
        rs = [r for r in runs if r['config'] == config and r['setting'] == setting and r.get('final_beta')]
        if not rs: continue
        base = {r['seed']: r for r in runs if r['config'] == BASELINE and r['setting'] == setting}
        beta = np.array([[r['final_beta'][m] for m in MODALITIES] for r in rs])
        weak = np.array([single(base.get(r['seed'], r)) for r in rs])
        rho_d = np.array([stats.spearmanr(b, w).statistic for b, w in zip(beta, weak)])
        d = dict(runs=len(rs), mean_beta=dict(zip(MODALITIES, beta.mean(0).round(3).tolist())),
                 weakness_from=f'{BASELINE}, same seed' if all(r['seed'] in base for r in rs) else 'mixed',
                 single_dice=dict(zip(MODALITIES, weak.mean(0).round(1).tolist())),
                 beta_falls_with_dice=sign_count((rho_d < 0).sum(), np.isfinite(rho_d).sum()))
        if setting != 'pdt':
            share = 1 - np.asarray(parse_setting(setting), float)
            rho_s = np.array([stats.spearmanr(b, share).statistic for b in beta])
            d.update(nominal_share=dict(zip(MODALITIES, share.round(2).tolist())),
                     beta_rises_with_share=sign_count((rho_s > 0).sum(), np.isfinite(rho_s).sum()),
                     share_vs_dice_rho=round(float(stats.spearmanr(share, weak.mean(0)).statistic), 2))
        out[setting] = d
    return out

def catch_up(runs:list[dict], setting:str='mr2468', without:str='DMAF + relation + prototype')->dict:
    """Does the lagging modality catch up under DTM? Per modality and region: the shared decoder's Dice with that
    modality alone on the validation cases at the end of training (points), full DMAF-Net and `without` DTM, and the
    paired (by seed) difference with its 95 % t-interval."""
    final = lambda r: r['unimodal_curve'][-1]
    rs = {(r['config'], r['seed']): r for r in runs if r['setting'] == setting and r.get('unimodal_curve')}
    seeds = sorted(k for c, k in rs if c == FULL and (without, k) in rs)
    if not seeds: return {}
    out = {}
    for m in MODALITIES:
        for reg in REGIONS:
            a = [100 * final(rs[FULL, k])[f'{m}_{reg}'] for k in seeds]; b = [100 * final(rs[without, k])[f'{m}_{reg}'] for k in seeds]
            out.setdefault(m, {})[reg] = dict(dtm=round(float(np.mean(a)), 1), no_dtm=round(float(np.mean(b)), 1),
                                              diff=t_interval(np.subtract(a, b)))
    return dict(seeds=seeds, without=without, per_modality=out)

def plateau(runs:list[dict])->dict:
    "Per setting/config: mean and largest |change| of validation Dice (points) over the last 25 % of the budget."
    out = {}
    for r in runs:
        c = r['val_curve']
        if len(c) < 2: continue
        total = c[-1]['step']; start = [v for v in c if v['step'] <= 0.75 * total + 1e-9]
        if not start: continue
        out.setdefault(f"{r['setting']} / {r['config']}", []).append(c[-1]['val_mean'] - start[-1]['val_mean'])
    return {k: dict(mean=round(float(np.mean(v)), 2), max_abs=round(float(np.max(np.abs(v))), 2), runs=len(v)) for k, v in out.items()}

def curve_gap(runs:list[dict], config:str=FULL)->dict:
    "Per setting: `config` − mean fusion in validation Dice (points) at each validation step, paired by seed (where the gap opens, whether it closes)."
    curve = lambda r: {v['step']: v['val_mean'] for v in r['val_curve']}
    out = {}
    for setting in SETTING_ORDER:
        base = {r['seed']: curve(r) for r in runs if r['setting'] == setting and r['config'] == BASELINE}
        other = {r['seed']: curve(r) for r in runs if r['setting'] == setting and r['config'] == config}
        seeds = sorted(set(base) & set(other))
        if len(seeds) < 2: continue
        diffs = {}                                   # step → paired differences of the seeds validated at that step
        for sd in seeds:
            for step in sorted(set(base[sd]) & set(other[sd])): diffs.setdefault(step, []).append(other[sd][step] - base[sd][step])
        out[setting] = {int(step): t_interval(d) for step, d in sorted(diffs.items()) if len(d) >= 2}
    return out

def summary(runs:list[dict], fixed:dict|None=None)->dict:
    "The numbers of evidence.json."
    df = run_table(runs)
    dil = {}
    for setting in SETTING_ORDER:
        for config in CONFIGS:
            v = [dilution(r) for r in runs if r['setting'] == setting and r['config'] == config]
            if v: dil.setdefault(setting, {})[config] = dict(mean=round(float(np.mean(v)), 3), sd=round(float(np.std(v, ddof=1)), 3) if len(v) > 1 else None, runs=len(v))
    full = [r for r in runs if r['config'] == FULL and r.get('final_beta')]
    beta_dev = {s: round(max(abs(b - 1) for r in full if r['setting'] == s for b in r['final_beta'].values()), 4)
                for s in SETTING_ORDER if any(r['setting'] == s for r in full)}
    grads = [r['grad_norms'] for r in full if r.get('grad_norms')]
    ratio = {m: round(float(np.mean([g['k_on'][m] / g['k_off'][m] for g in grads if g['k_off'][m] > 0])), 4) for m in MODALITIES} if grads else {}
    # k over the same runs as the ratio: a run whose batches never held a modality has no ratio for it
    kmean = {m: round(float(np.mean([g['k'][m] for g in grads if g['k_off'][m] > 0])), 4) for m in MODALITIES} if grads else {}
    means = df.groupby(['setting', 'config'])[list(REGIONS)].agg(['mean', 'std', 'count'])
    # three decimals, so the one-decimal tables round once (8.546 -> 8.5, not 8.55 -> 8.6)
    table = {f'{s} / {c}': {reg: dict(mean=round(float(means.loc[(s, c), (reg, 'mean')]), 3),
                                      sd=round(float(means.loc[(s, c), (reg, 'std')]), 3) if means.loc[(s, c), (reg, 'count')] > 1 else None,
                                      seeds=int(means.loc[(s, c), (reg, 'count')])) for reg in REGIONS} for s, c in means.index}
    pr = paired(runs)
    return dict(runs=[dict(config=r['config'], setting=r['setting'], seed=r['seed'], wt=r['wt'], tc=r['tc'], et=r['et'],
                           minutes=r['minutes']) for r in runs],
                means=table, paired=pr, precision=precision(pr), component_steps=ladder(runs), dilution=dil, dmaf_weight_correlation=weight_correlation(runs),
                dtm_beta_max_abs_dev=beta_dev, dtm_beta_balance=beta_balance(runs), unimodal_catch_up=catch_up(runs), final_beta={f"{r['setting']} / s{r['seed']}": r['final_beta'] for r in full},
                grad_scaling=dict(ratio_on_off=ratio, mean_k=kmean, runs=len(grads)), plateau=plateau(runs),
                full_minus_mean_along_training=curve_gap(runs), fixed_analyses=fixed_analyses(runs, fixed) if fixed else {})

# --- figures --------------------------------------------------------------------------------------------------------
def _plt():
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt

def fig_paired(s:dict, path:Path):
    "Paired differences to mean fusion with 95 % intervals, per setting, configuration and region."
    plt = _plt()
    rows = [(st, c, e) for st in SETTING_ORDER for c, e in s['paired'].get(st, {}).items()]
    if not rows: return
    fig, axes = plt.subplots(1, 3, figsize=(14, 0.45 * len(rows) + 1.6), sharey=True)
    for ax, reg in zip(axes, REGIONS):
        for i, (st, c, e) in enumerate(rows):
            d = e[reg]; lo, hi = d['ci_low'], d['ci_high']
            col = '#2ca02c' if np.isfinite(lo) and lo > 0 else '#d62728' if np.isfinite(hi) and hi < 0 else '#555555'
            if np.isfinite(lo): ax.plot([lo, hi], [i, i], color=col, lw=2)
            ax.plot(d['mean'], i, 'o', color=col)
        ax.axvline(0, color='k', lw=.8); ax.grid(axis='x', alpha=.3)
        ax.set(title=f'{reg}: Δ Dice vs mean fusion (points)', xlabel='paired difference, 95 % t-interval')
    axes[0].set_yticks(range(len(rows))); axes[0].set_yticklabels([f'{c} [{st}]' for st, c, _ in rows], fontsize=8)
    axes[0].set_ylim(len(rows) - .5, -.5)
    fig.suptitle('Evidence study: each configuration minus mean fusion, paired by seed (green: interval above 0, red: below)', fontsize=10)
    fig.tight_layout(); fig.savefig(path, dpi=100); plt.close(fig)

def fig_weights(runs:list[dict], path:Path):
    "DMAF weight per modality inside each region's tissue against that modality's single-modality Dice."
    plt = _plt()
    rs = [r for r in runs if r.get('dmaf_weights') and r['setting'] == 'mr2468']
    if not rs: return
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.8))
    colours = dict(zip(MODALITIES, ('#1f77b4', '#d62728', '#2ca02c', '#9467bd')))
    for ax, (reg, tissue) in zip(axes, REGION_TISSUE.items()):
        for m in MODALITIES:
            ax.plot([r['dmaf_weights'][tissue][m] for r in rs], [r['per_subset'][m][reg] for r in rs], 'o', color=colours[m], alpha=.6, label=m)
        ax.set(title=f'{reg} ({tissue})', xlabel=f'mean DMAF weight in {tissue}', ylabel=f'{reg} Dice, modality alone')
        ax.axvline(0.25, color='k', lw=.6, ls=':'); ax.grid(alpha=.3)
    ax = axes[3]
    w = np.array([[np.mean([r['dmaf_weights'][t][m] for r in rs]) for m in MODALITIES] for t in ('enhancing', 'necrosis', 'edema', 'normal')])
    im = ax.imshow(w, cmap='viridis', vmin=0, vmax=max(.5, w.max())); fig.colorbar(im, ax=ax, fraction=.046)
    ax.set_xticks(range(4)); ax.set_xticklabels(MODALITIES); ax.set_yticks(range(4)); ax.set_yticklabels(('enhancing', 'necrosis', 'edema', 'normal'))
    for (i, j), v in np.ndenumerate(w): ax.text(j, i, f'{v:.2f}', ha='center', va='center', color='w' if v < .35 else 'k', fontsize=8)
    ax.set_title('mean weight (all four available)')
    axes[0].legend(fontsize=8); fig.suptitle(f'DMAF weights vs what each modality shows ({len(rs)} DMAF runs, mr2468; 0.25 = mean fusion)', fontsize=10)
    fig.tight_layout(); fig.savefig(path, dpi=100); plt.close(fig)

def mean_curve(runs:list[dict], curve:str, value)->tuple[list, np.ndarray]:
    "Steps of the first run's `curve` and the mean of `value(point)` over the runs whose curve has as many points."
    steps = [c['step'] for c in runs[0][curve]]
    return steps, np.mean([[value(c) for c in r[curve]] for r in runs if len(r[curve]) == len(steps)], 0)

def fig_dtm(runs:list[dict], path:Path):
    "β per modality over training (full DMAF-Net), and shared-decoder Dice per modality with and without DTM."
    plt = _plt()
    full = [r for r in runs if r['config'] == FULL and r.get('dtm')]
    tracked = [r for r in runs if r.get('unimodal_curve')]
    if not full: return
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
    colours = dict(zip(MODALITIES, ('#1f77b4', '#d62728', '#2ca02c', '#9467bd')))
    for r in full:
        if r['setting'] != 'mr2468': continue
        for m in MODALITIES: axes[0].plot(r['dtm'][m]['step'], r['dtm'][m]['beta'], color=colours[m], alpha=.6, label=m if r is full[0] else None)
    axes[0].axhline(1, color='k', lw=.6); axes[0].set(title='β = k per modality (mr2468, each seed)', xlabel='step', ylabel='β')
    axes[0].legend(fontsize=8)
    for ax, reg in zip(axes[1:], ('WT', 'ET')):
        for config, ls in ((FULL, '-'), ('DMAF + relation + prototype', '--')):
            rs = [r for r in tracked if r['config'] == config]
            if not rs: continue
            for m in MODALITIES:
                steps, vals = mean_curve(rs, 'unimodal_curve', lambda c: 100 * c[f'{m}_{reg}'])
                ax.plot(steps, vals, ls, color=colours[m], label=f"{m}, {'DTM' if config == FULL else 'no DTM'}")
        ax.set(title=f'{reg}: shared decoder, each modality alone', xlabel='step', ylabel='Dice (%)'); ax.grid(alpha=.3)
    axes[1].legend(fontsize=7, ncol=2)
    fig.tight_layout(); fig.savefig(path, dpi=100); plt.close(fig)

def fig_curves(runs:list[dict], path:Path):
    "Validation Dice over training per configuration (each seed thin, the mean thick), one panel per setting."
    if not any(r['val_curve'] for r in runs): return
    plt = _plt()
    fig, axes = plt.subplots(1, len(SETTING_ORDER), figsize=(15, 3.8), sharey=True)
    colours = dict(zip(CONFIGS, plt.rcParams['axes.prop_cycle'].by_key()['color']))
    for ax, setting in zip(axes, SETTING_ORDER):
        for config in CONFIGS:
            rs = [r for r in runs if r['setting'] == setting and r['config'] == config and r['val_curve']]
            if not rs: continue
            for r in rs: ax.plot([c['step'] for c in r['val_curve']], [c['val_mean'] for c in r['val_curve']], color=colours[config], lw=.6, alpha=.4)
            ax.plot(*mean_curve(rs, 'val_curve', lambda c: c['val_mean']), color=colours[config], lw=2, label=config)
        ax.axvspan(0.75 * max(c['step'] for r in runs for c in r['val_curve']), ax.get_xlim()[1], color='k', alpha=.06)
        ax.set(title=f'{setting}: validation Dice (shaded: last 25 %)', xlabel='step'); ax.grid(alpha=.3)
    axes[0].set_ylabel('val Dice (points)')
    max(axes, key=lambda a: len(a.get_legend_handles_labels()[1])).legend(fontsize=7)   # the panel with every configuration
    fig.tight_layout(); fig.savefig(path, dpi=100); plt.close(fig)

# --- the report -----------------------------------------------------------------------------------------------------
def write_report(run_folder:Path, prefix:Path, stages:dict|None=None, fixed:dict|None=None)->str:
    """Write `prefix`.json, `prefix`.md and `prefix`_*.png from the result files in `run_folder`; return the Markdown.
    `stages` (held back until complete) and `fixed` (analyses over fixed seeds): the main study passes `STAGES`, `FIXED`."""
    runs, stages = hold_back(load_runs(run_folder), stages or {})
    if not runs: raise SystemExit(f'evidence: no finished runs in {run_folder} outside the stages still running')
    s = summary(runs, fixed); s['stages'] = stages
    commit = git_commit()
    machines = sorted({r.get('machine', 'not recorded') for r in runs})
    s['meta'] = dict(date=datetime.now(timezone.utc).isoformat(timespec='seconds'), commit=commit, machines=machines,
                     budget=runs[0]['budget'], test_cases=runs[0]['test_cases'], interval="Student's t, 95 %, paired by seed")
    prefix.parent.mkdir(parents=True, exist_ok=True)
    write_json(Path(f'{prefix}.json'), s)
    name = prefix.name
    figures = {'paired': fig_paired, 'weights': fig_weights, 'dtm': fig_dtm, 'curves': fig_curves}
    for kind, draw in figures.items():   # a figure without data is not drawn, and not linked
        f = Path(f'{prefix}_{kind}.png'); f.unlink(missing_ok=True); draw(s if kind == 'paired' else runs, f)
    img = lambda kind, alt: [f'![{alt}]({name}_{kind}.png)', ''] if Path(f'{prefix}_{kind}.png').is_file() else []
    b = runs[0]['budget']
    fmt = lambda d: f"{d['mean']:.1f} ± {d['sd']:.1f}" if d['sd'] is not None else f"{d['mean']:.1f}"
    ci = lambda d: f"{d['mean']:+.1f} [{d['ci_low']:+.1f}, {d['ci_high']:+.1f}]" if np.isfinite(d['ci_low']) else f"{d['mean']:+.1f}"
    title = 'The evidence study' + ('' if name == 'evidence' else f' ({name})')
    L = [f'# {title}', '',
         f"{s['meta']['date'][:10]} · report at commit {commit} · runs on {'; '.join(machines)} · {len(runs)} runs, "
         f"{np.mean([r['minutes'] for r in runs]):.1f} min each on average (training, scoring and probes)", '',
         *[f"*{k}: {v['landed']} of its {v['planned']} runs have landed; they stay out of every table and figure until all "
           "have (so this report is not a look at it).*" for k, v in stages.items() if v['held_back']],
         *([''] if any(v['held_back'] for v in stages.values()) else []),
         f"Each run: the `study` preset (2D, 3 mm phantom, {b['epochs']} × {b['steps_per_epoch']} steps of batch {b['batch_size']}), "
         f"scored on `last.pt` on {runs[0]['test_cases']} test cases under all 15 subsets (whole slices). Dice in points: "
         "mean over the 15 subsets; ± the s.d. over seeds. Δ: paired difference to mean fusion (same seed) with its "
         f"95 % t-interval. Made by `benchmarks/evidence.py`; the reading is `{name}_reading.md`.", '',
         '## Scores and paired differences', '',
         'Scores use every run of the row; Δ uses the seeds that the row and mean fusion both have (paired n).', '',
         '| setting | configuration | seeds | WT | TC | ET | paired n | Δ WT | Δ TC | Δ ET | dilution |', '|---|---|---|---|---|---|---|---|---|---|---|']
    for st in SETTING_ORDER:
        for c in CONFIGS:
            key = f'{st} / {c}'
            if key not in s['means']: continue
            m = s['means'][key]; p = s['paired'].get(st, {}).get(c)
            dl = s['dilution'].get(st, {}).get(c)
            dls = f"{dl['mean']:.1f}" if dl else '–'
            L.append(f"| {st} | {c} | {m['WT']['seeds']} | " + ' | '.join(fmt(m[r]) for r in REGIONS) + f" | {p['WT']['n'] if p else '–'} | "
                     + (' | '.join(ci(p[r]) for r in REGIONS) if p else '– | – | –') + f' | {dls} |')
    L += ['', '**What each part buys** (mr2468; each configuration minus the same without that part, paired by seed, '
          '95 % t-interval):', '', '| step | seeds | Δ WT | Δ TC | Δ ET |', '|---|---|---|---|---|']
    L += [f"| {k} | {v['WT']['n']} | " + ' | '.join(ci(v[r]) for r in REGIONS) + ' |' for k, v in s['component_steps'].items()]
    full = {st: v[FULL] for st, v in s['paired'].items() if FULL in v}
    if full:
        sg = lambda d: (f"{d['wins']}/{d['n']}{' (' + str(d['ties']) + ' tied)' if d['ties'] else ''}, median {d['median']:+.1f}, "
                        f"sign p {d['sign_p']:.2g}, Wilcoxon p {d.get('wilcoxon_p', float('nan')):.2g}")
        L += ['', '**Full DMAF-Net − mean fusion, seed by seed** (a check that does not lean on normality: the seeds on which '
              'full DMAF-Net scores higher, the median paired difference, a two-sided sign test over the untied seeds and Wilcoxon\'s signed-rank test):', '',
              '| setting | WT | TC | ET |', '|---|---|---|---|']
        L += [f"| {st} | " + ' | '.join(sg(d[r]) for r in REGIONS) + ' |' for st, d in full.items()]
        need = lambda d: d['seeds_for_target'] or ('more than 10,000' if np.isfinite(d['sd']) else '–')
        hw = lambda d: f"±{d['half_width']:.1f} (s.d. {d['sd']:.1f}; ±2 needs {need(d)})"
        L += ['', '**How precise full DMAF-Net − mean fusion is** (the target is ±2 points a region): the 95 % interval\'s '
              'half-width now, the s.d. of the paired differences, and how many paired seeds ±2 would need if that s.d. held:', '',
              '| setting | paired n | WT | TC | ET |', '|---|---|---|---|---|']
        L += [f"| {st} | {d['WT']['n']} | " + ' | '.join(hw(d[r]) for r in REGIONS) + ' |' for st, d in s['precision'].items()]
    fa = s['fixed_analyses']
    if fa:
        cell = lambda d: f"{ci(d)} (±{d['half_width']:.1f}; {d['wins']}/{d['n']} ahead{', ' + str(d['ties']) + ' tied' if d['ties'] else ''}, sign p {d['sign_p']:.2g}, Wilcoxon p {d['wilcoxon_p']:.2g})"
        L += ['', '**The analyses fixed in advance** (full DMAF-Net − mean fusion, mr2468, over the seeds each was fixed to, '
              'reported once all of them are in; 95 % t-interval, its half-width, the seeds where full DMAF-Net is ahead, '
              'sign and Wilcoxon p; `evidence_reading.md` has the rules):', '',
              '| analysis | seeds | WT | TC | ET |', '|---|---|---|---|---|']
        L += [f"| {k} | {d['first_seed']}–{d['last_seed']} ({d['planned']}) | "
              + (' | '.join(cell(d[r]) for r in REGIONS) if d['status'] == 'complete'
                 else f"waiting: {d['paired']} of {d['planned']} paired seeds in the tables | – | –") + ' |' for k, d in fa.items()]
    L += ['', *img('paired', 'Paired differences'),
          '**Dilution**: mean over regions and ordered modality pairs (X, Y), X the better of the two alone, of '
          'Dice(X) − Dice(X + Y) (points; 0 = adding the weaker modality costs nothing).', '',
          '## DMAF weights against what each modality shows', '',
          "Pearson r pooled over runs (4 points a run, not independent: read p with care), and per run the sign of r over its "
          "four modalities (runs with r > 0, sign test).", '']
    wc = s['dmaf_weight_correlation']
    L += ['| region | tissue | pooled Pearson r | p | points | runs with r > 0 |', '|---|---|---|---|---|---|']
    L += [f"| {reg} | {d['tissue']} | {d['r']:+.3f} | {d['p']:.2g} | {d['points']} | {d.get('runs_positive', '–')} |" for reg, d in wc.items()]
    L += ['', *img('weights', 'DMAF weights'), '## DTM acts', '',
          '| setting | largest \\|β − 1\\| at the end (full DMAF-Net, over seeds and modalities) |', '|---|---|']
    L += [f'| {st} | {v:.3f} |' for st, v in s['dtm_beta_max_abs_dev'].items()]
    bb = s['dtm_beta_balance']
    if bb:
        cnt = lambda c: f"{c['count']}/{c['runs']} (p {c['sign_p']:.2g})" if c else '–'
        L += ['', '**Whom DTM raises** (full DMAF-Net; the run is the unit): mean final β per modality, beside the modality\'s '
              'nominal share of training cases and its weakness (single-modality Dice of the same seed\'s mean-fusion run, mean '
              'over regions, points). Per run, Spearman ρ over its four modalities: the runs in which β rises with the share, '
              'and those in which β falls as the Dice rises, with a two-sided sign test. Under PDT every share is 1, so only '
              'weakness can explain β there; ρ(share, Dice) says how far the two explanations are confounded in a setting.', '',
              '| setting | runs | ' + ' | '.join(f'{m}: β / share / Dice' for m in MODALITIES) + ' | β rises with share | β falls with Dice | ρ(share, Dice) |',
              '|---|---|' + '---|' * len(MODALITIES) + '---|---|---|']
        L += [f"| {st} | {d['runs']} | " + ' | '.join(f"{d['mean_beta'][m]:.2f} / {d.get('nominal_share', {}).get(m, 1.0):.1f} / {d['single_dice'][m]:.1f}"
                                                    for m in MODALITIES)
              + f" | {cnt(d.get('beta_rises_with_share'))} | {cnt(d['beta_falls_with_dice'])} | "
              + (f"{d['share_vs_dice_rho']:+.2f} |" if 'share_vs_dice_rho' in d else '– |')
              for st, d in bb.items()]
    cu = s['unimodal_catch_up']
    if cu:
        L += ['', f"**Does the lagging modality catch up?** (mr2468, {len(cu['seeds'])} seeds) The shared decoder's Dice with each "
              f"modality alone on the study's 4 validation cases at the end of training, full DMAF-Net vs {cu['without']} (no DTM), "
              "and the paired difference (points, 95 % t-interval). Descriptive: few seeds and 4 cases.", '', '| modality | ' + ' | '.join(f'{r}: DTM / none / Δ' for r in REGIONS) + ' |',
              '|---|' + '---|' * len(REGIONS)]
        L += [f'| {m} | ' + ' | '.join(f"{d[r]['dtm']:.1f} / {d[r]['no_dtm']:.1f} / {ci(d[r]['diff'])}" for r in REGIONS) + ' |'
              for m, d in cu['per_modality'].items()]
    g = s['grad_scaling']
    if g['ratio_on_off']:
        L += ['', f"Gradient scaling in a real training step (full DMAF-Net, every setting in this folder, {g['runs']} runs, the final β of each "
              "run, 4 training batches): encoder gradient norm with k on ÷ with k off, against the mean k.", '',
              '| | ' + ' | '.join(MODALITIES) + ' |', '|---|' + '---|' * len(MODALITIES),
              '| norm ratio (on/off) | ' + ' | '.join(f"{g['ratio_on_off'][m]:.3f}" for m in MODALITIES) + ' |',
              '| mean k | ' + ' | '.join(f"{g['mean_k'][m]:.3f}" for m in MODALITIES) + ' |']
    L += ['', *img('dtm', 'DTM'), '## Plateau', '',
          'Validation Dice (mean over all-four and each single modality, regions; points): change over the last 25 % of the budget.', '',
          '| setting and configuration | mean change | largest \\|change\\| | runs |', '|---|---|---|---|']
    L += [f"| {k} | {v['mean']:+.2f} | {v['max_abs']:.2f} | {v['runs']} |" for k, v in s['plateau'].items()]
    L += ['', *img('curves', 'Validation curves')]
    if s['full_minus_mean_along_training']:
        L += ['', f'**{FULL} − mean fusion along training** (validation Dice, points, paired by seed; 95 % t-interval; wins: seeds '
              'where full DMAF-Net is ahead). Where the gap opens, and whether it closes by the end of the budget:', '',
              '| setting | step | paired n | Δ validation Dice | wins | median |', '|---|---|---|---|---|---|']
        L += [f"| {setting} | {step} | {v['n']} | {v['mean']:+.1f} [{v['ci_low']:+.1f}, {v['ci_high']:+.1f}] | {v['wins']}/{v['n']} | {v['median']:+.1f} |"
              for setting, rows in s['full_minus_mean_along_training'].items() for step, v in rows.items()]
    text = '\n'.join(L)
    write_text(Path(f'{prefix}.md'), text)
    return text
