"""The evidence study (issue 15): what each part of DMAF-Net does, with seeds enough to tell, on the built-in phantom.

    .venv/bin/python benchmarks/evidence.py --commit          # the whole study (50 runs), resumable, each result committed
    .venv/bin/python benchmarks/evidence.py --commit --threads 1 --shard 1/2 &  # … as two 1-thread workers side by side
    .venv/bin/python benchmarks/evidence.py --commit --threads 1 --shard 2/2
    .venv/bin/python benchmarks/evidence.py --report-only     # tables, figures and evidence.json from the finished runs
    .venv/bin/python benchmarks/evidence.py --device cuda --threads 8 --configs 'mean fusion' 'full DMAF-Net (+ DTM)' \\
        --settings mr2468 --seeds 1037 1038 1039 --results /tmp/evidence_gpu/evidence_gpu \\
        --runs /tmp/evidence_gpu/runs --work /tmp/evidence_gpu/work   # one GPU (unrun): 6 runs, fp32 like the CPU runs
    .venv/bin/python benchmarks/evidence.py --commit --threads 1 --epochs 24 --settings mr2468 \\
        --configs 'mean fusion' 'DMAF + relation + prototype' 'full DMAF-Net (+ DTM)' --seeds 1037 1038 1039 \\
        --runs benchmarks/evidence_long_runs --results benchmarks/evidence_long --work runs/evidence_long   # 3x budget check

Every run starts from the `study` preset (see `dmafnet.config.PRESETS`: 2D slices of the 3 mm phantom, 48 cases, a
narrow network, a fixed budget of steps), on one phantom cache whose cases, split (split seed 1037) and mr2468 /
mr8825 masks (mask seed 1037) are the same for every run; a run's seed changes only its weights, sample order and
augmentation. Plan, per seed: the six configurations of the ablation under mr2468, then `mean` fusion and full
DMAF-Net under PDT (complete data, a random subset per sample) and under mr8825 (t1ce and t1 80 % missing, flair
20 %, t2 50 %). Seeds are the outer loop, so a partial study still pairs every configuration.

Each run: trains (validating each epoch on the validation cases: the plateau), is scored on `last.pt` (never
chosen by looking at data) on all test cases under all 15 subsets (whole slices), and probed: DMAF weights per
modality and tissue (DMAF runs), per-encoder gradient norms with DTM's k on and off (full DMAF-Net), shared-decoder
Dice per modality over training (DMAF + relation + prototype, and full DMAF-Net, under mr2468). The run's small
`result.json` is written atomically to `--runs` (committed with `--commit`); a run whose result is there is skipped,
an interrupted one resumes from its `last.pt` in `--work`; a finished run's checkpoints are removed once its result
file is written (`--keep-checkpoints` keeps them).
"""
from __future__ import annotations
import argparse, json, re, shutil, subprocess, sys, time, warnings
from pathlib import Path
import numpy as np, pandas as pd, torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'benchmarks')); sys.path.insert(0, str(ROOT))
from provenance import machine, write_json
from dmafnet.config import preset
from dmafnet.train import train
from dmafnet.trainparts import load_model
from dmafnet.evaluate import evaluate, find_split
from dmafnet.metrics import dice, region_mask
from dmafnet.network import pad_to_multiple
from dmafnet.dmaf import resize_maps

from evidence_report import CONFIGS, REGIONS, MODALITIES, BASELINE, FULL, STAGES, FIXED, hold_back, load_runs, stage_runs, write_report
MAIN_RUNS = ROOT / 'benchmarks' / 'evidence_runs'   # the main study: its stages and fixed analyses apply (evidence_report)
SETTINGS = {'mr2468': dict(missing='idt', setting='mr2468'), 'pdt': dict(missing='pdt'),
            'mr8825': dict(missing='idt', setting='mr8825')}
SWEEP = (BASELINE, FULL)                                       # configurations of the missing-rate sweep
TRACKED = ('DMAF + relation + prototype', FULL)                # uni-modal Dice followed over training (mr2468)
TISSUES = {'enhancing': 3, 'necrosis': 1, 'edema': 2, 'normal': 0}   # training labels; 'normal': brain without tumour

def slug(name:str)->str: return re.sub(r'[^a-z0-9]+', '-', name.lower().replace('ω', 'omega')).strip('-')
assert len({slug(c) for c in CONFIGS}) == len(CONFIGS), 'two configurations share a run-file name'

def plan(seeds, configs=tuple(CONFIGS), settings=tuple(SETTINGS))->list[tuple[int, str, str]]:
    "(seed, setting, config) in running order: seeds outermost, the mr2468 ablation first, then the sweep."
    out = []
    for seed in seeds:
        out += [(seed, 'mr2468', c) for c in configs if 'mr2468' in settings]
        out += [(seed, s, c) for s in settings if s != 'mr2468' for c in SWEEP if c in configs]
    return out

def run_name(seed:int, setting:str, config:str)->str: return f'{setting}__{slug(config)}__s{seed}'

# --- data -----------------------------------------------------------------------------------------------------------
def study_data(work:Path, n_cases:int|None=None)->Path:
    "The study preset's phantom (`n_cases`: the preset's 48 unless given), preprocessed once into `work/data/cache` with the preset's split seed."
    from dmafnet.phantom import make_phantom
    from dmafnet.preprocess import preprocess_dataset
    p = preset('study')
    cache = work / 'data' / 'cache'
    if not (cache / 'cases.csv').is_file():
        make_phantom(work / 'data' / 'raw', n_cases=n_cases or p.phantom_cases, seed=p.phantom_seed, spacing=p.phantom_spacing)
        preprocess_dataset(work / 'data' / 'raw', cache, split_seed=p.split_seed, verbose=False)
    return cache

def mask_table(work:Path, cache:Path, setting:str)->str|None:
    "One IDT mask table per setting for every run (drawn once with the preset's mask seed), or None under PDT."
    if SETTINGS[setting]['missing'] != 'idt': return None
    from dmafnet.missing import imbalanced_masks, write_mask_csv
    path = work / 'data' / f'masks_{setting}.csv'
    if not path.is_file():
        train_names = find_split('train', cache)
        write_mask_csv(imbalanced_masks(train_names, setting, seed=preset('study').mask_seed), path)
    return str(path)

# --- probes ---------------------------------------------------------------------------------------------------------
def _slices(case:dict, model)->tuple[torch.Tensor, tuple]:
    "A cached 3D case as a batch of axial slices D×M×H×W on the model's device, padded to multiples of 16."
    x = torch.as_tensor(np.asarray(case['image']), dtype=torch.float32).permute(3, 0, 1, 2)
    return pad_to_multiple(x.to(next(model.parameters()).device))

@torch.no_grad()
def unimodal_dice(model, cases:list[dict], regions:dict)->dict:
    """Shared-decoder Dice per modality alone (mean over `cases`), per region: {modality: {region: dice}}.

    One forward with all modalities available: each modality's encoder sees only its own channel and the shared
    decoder decodes each modality's own features, so its uni-modal output is the one it gives when it is alone."""
    was = model.training; model.eval()
    out = {m: {r: [] for r in regions} for m in MODALITIES}
    try:
        for case in cases:
            x, crop = _slices(case, model); label = np.asarray(case['label'])
            z = model(x, torch.ones(len(x), len(MODALITIES), dtype=torch.bool, device=x.device)).modality_logits
            for i, m in enumerate(MODALITIES):
                pred = z[:, i][crop].argmax(1).permute(1, 2, 0).cpu().numpy()             # D×K×H×W → H×W×D
                for r, labels in regions.items(): out[m][r].append(dice(region_mask(pred, labels), region_mask(label, labels)))
    finally: model.train(was)
    return {m: {r: float(np.mean(v)) for r, v in d.items()} for m, d in out.items()}

@torch.no_grad()
def dmaf_weights(model, cases:list[dict])->dict|None:
    "Mean DMAF weight of each modality (all four available) inside each tissue of the test cases: {tissue: {modality: w}}."
    was = model.training; model.eval()
    sums = {t: np.zeros(len(MODALITIES)) for t in TISSUES}; counts = {t: 0 for t in TISSUES}
    try:
        for case in cases:
            x, crop = _slices(case, model); label = np.asarray(case['label'])
            brain = (np.asarray(case['image']) != 0).any(0)
            att = model(x, torch.ones(len(x), len(MODALITIES), dtype=torch.bool, device=x.device), modality_logits=False).attention
            if att is None: return None
            maps = resize_maps(att.float(), x.shape[2:])[crop]                        # D×M×H×W
            maps = maps.permute(1, 2, 3, 0).cpu().numpy()                                            # M×H×W×D
            for t, k in TISSUES.items():
                sel = (label == k) & (brain if k == 0 else True)
                if sel.any(): sums[t] += maps[:, sel].sum(1); counts[t] += int(sel.sum())
    finally: model.train(was)
    return {t: dict(zip(MODALITIES, (sums[t] / max(counts[t], 1)).round(4).tolist())) for t in TISSUES}

def grad_norms(cfg, checkpoint:Path, beta:list[float], n_batches:int=4)->dict:
    "Per-encoder gradient norm of the training loss on fixed training batches, with DTM's k = β and with k off."
    from dmafnet.train import Trainer
    tr = Trainer(cfg, resume=True)                   # the run's data, criterion, DTM state and weights at the end
    tr.batches.set_epoch(0, 0); it = iter(tr.loader); batches = [next(it) for _ in range(min(n_batches, tr.steps))]
    net = tr.model; out = {}
    for name, k in (('k_on', torch.tensor(beta, device=tr.device)), ('k_off', None)):
        norms = np.zeros(len(MODALITIES))
        net.set_grad_scale(k)
        for b in batches:
            image, avail, label = tr._to_device(b)
            total, _ = tr.objective(image, avail, label, None)
            tr.optimiser.zero_grad(set_to_none=True); total.backward()
            norms += [float(torch.sqrt(sum((p.grad.float() ** 2).sum() for p in e.parameters() if p.grad is not None)))
                      for e in net.encoders]
        tr.optimiser.zero_grad(set_to_none=True)
        out[name] = dict(zip(MODALITIES, (norms / len(batches)).round(6).tolist()))
    out['k'] = dict(zip(MODALITIES, [round(float(b), 4) for b in beta]))
    tr.close()                                       # the run folder's lock
    return out

# --- one run --------------------------------------------------------------------------------------------------------
def run_one(seed:int, setting:str, config:str, cache:Path, a)->dict:
    "Train one (seed, setting, configuration), score and probe it; the result record (also written to `--runs`)."
    name = run_name(seed, setting, config)
    done = Path(a.runs) / f'{name}.json'
    if done.is_file(): return json.loads(done.read_text())
    out = Path(a.work) / name
    cfg = preset('study', data=str(cache), out=str(out), seed=seed, threads=a.threads, progress=False, device=a.device,
                 precision=a.precision,
                 mask_csv=mask_table(Path(a.work), cache, setting), **SETTINGS[setting], **CONFIGS[config],
                 **({'epochs': a.epochs} if a.epochs else {}), **({'steps_per_epoch': a.steps} if a.steps else {}))
    from dmafnet.data import load_cached
    val_cases = [load_cached(cache / f'{n}.npz') for n in find_split('val', cache)[:cfg.val_cases]]
    track = setting == 'mr2468' and config in TRACKED
    curve = []
    def follow(event, trainer):
        if event == 'epoch' and track and (trainer.epoch % 2 == 0 or trainer.epoch == cfg.epochs):
            curve.append(dict(epoch=trainer.epoch, step=trainer.global_step, **{f'{m}_{r}': v for m, d in
                              unimodal_dice(trainer.model, val_cases, cfg.regions).items() for r, v in d.items()}))
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        ckpt = out / 'checkpoints' / 'last.pt'
        curve_file = out / 'unimodal_curve.json'
        if ckpt.is_file() and curve_file.is_file(): curve = json.loads(curve_file.read_text())
        train(cfg, resume=ckpt.is_file(), callbacks=[follow, lambda e, t: e == 'epoch' and write_json(curve_file, curve)])
    t1 = time.perf_counter()
    model, trained = load_model(ckpt, device=a.device)
    names = find_split('test', cache)[:a.cases or None]
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        ev = evaluate(model, names, data_dir=cache, patch_size=None, progress=False)
    per = ev.per_subset(); mean = ev.mean()
    t2 = time.perf_counter()
    log = pd.read_csv(out / 'log.csv')
    result = dict(config=config, setting=setting, seed=seed, machine=machine(), threads=a.threads, device=a.device, precision=a.precision, budget=dict(epochs=cfg.epochs, steps_per_epoch=cfg.steps_per_epoch,
                  batch_size=cfg.batch_size), test_cases=len(names),
                  **{r.lower(): round(100 * float(mean[f'dice_{r}']), 2) for r in REGIONS},
                  per_subset={s: {r: round(100 * float(v), 2) for r, v in zip(REGIONS, row)}
                              for s, row in zip(per['subset'], per[[f'dice_{r}' for r in REGIONS]].values)},
                  val_curve=[dict(epoch=int(r.epoch), step=int(r.epoch * r.steps), val_mean=round(100 * float(r.val_mean), 2))
                             for r in log.itertuples() if 'val_mean' in log and np.isfinite(r.val_mean)],
                  train_minutes=round((t1 - t0) / 60, 2), eval_minutes=round((t2 - t1) / 60, 2))
    test_cases = [load_cached(cache / f'{n}.npz') for n in names]
    if cfg.fusion == 'dmaf': result['dmaf_weights'] = dmaf_weights(model, test_cases)
    if track: result['unimodal_curve'] = curve
    if (out / 'dtm.csv').is_file():
        h = pd.read_csv(out / 'dtm.csv')
        result['dtm'] = {m: dict(step=g.step.astype(int).tolist()[::5], beta=g.beta.round(4).tolist()[::5])
                         for m, g in h.groupby('modality', sort=False)}
        last = h[h.epoch == h.epoch.max()].set_index('modality').reindex(list(MODALITIES))
        result['final_beta'] = dict(zip(MODALITIES, last.beta.round(4).tolist()))
        result['grad_norms'] = grad_norms(cfg, ckpt, last.beta.tolist())
    result['minutes'] = round((time.perf_counter() - t0) / 60, 2)
    done.parent.mkdir(parents=True, exist_ok=True)
    write_json(done, result)
    # the result file is the run's record; its checkpoints (~110-190 MB a run) would fill a small disk over a study
    if not a.keep_checkpoints: shutil.rmtree(ckpt.parent, ignore_errors=True)
    return result

def commit(path:Path, message:str):
    "Commit one result file, and only it, in the repository that holds it (retried while another git command holds the index)."
    path = Path(path).resolve(); repo = path.parent
    for attempt in range(10):
        add = subprocess.run(['git', 'add', '--', path.name], cwd=repo, capture_output=True, text=True)
        c = subprocess.run(['git', 'commit', '-q', '-m', message, '--', path.name], cwd=repo, capture_output=True, text=True)
        if add.returncode == 0 and c.returncode == 0: return
        if 'index.lock' not in (add.stderr + c.stderr): print(f'evidence: could not commit {path}: {c.stderr.strip()}', flush=True); return
        time.sleep(3)

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--configs', nargs='*', default=list(CONFIGS), help='configurations (default: all ten)')
    ap.add_argument('--settings', nargs='*', default=list(SETTINGS), help='missing-modality settings (default: all three)')
    ap.add_argument('--seeds', nargs='*', type=int, default=[1037, 1038, 1039, 1040, 1041])
    ap.add_argument('--epochs', type=int, default=None, help="epochs (default: the study preset's)")
    ap.add_argument('--steps', type=int, default=None, help="steps per epoch (default: the study preset's)")
    ap.add_argument('--cases', type=int, default=None, help='score at most this many test cases (default: all)')
    ap.add_argument('--phantom-cases', type=int, default=None, help="phantom cases (default: the study preset's 48; the smoke test uses fewer)")
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--device', default='cpu')
    ap.add_argument('--precision', default='fp32', help="training precision ('fp32' as in every CPU run; 'auto' would train a GPU run in bf16)")
    ap.add_argument('--work', default=str(ROOT / 'runs' / 'evidence'), help='run folders (checkpoints; git-ignored)')
    ap.add_argument('--runs', default=str(ROOT / 'benchmarks' / 'evidence_runs'), help='one small result file per finished run')
    ap.add_argument('--results', default=str(ROOT / 'benchmarks' / 'evidence'), help='report: this path + .json/.md, figures beside it')
    ap.add_argument('--shard', default='1/1', help="K/N: run only every N-th run of the plan, starting at the K-th (two 1-thread workers: 1/2 and 2/2)")
    ap.add_argument('--commit', action='store_true', help='git-commit each result file as it lands')
    ap.add_argument('--keep-checkpoints', action='store_true', help="keep a finished run's checkpoints (default: removed once its result file is written)")
    ap.add_argument('--report-only', action='store_true', help='only rebuild the report from the result files')
    a = ap.parse_args()
    bad = set(a.configs) - set(CONFIGS) | set(a.settings) - set(SETTINGS)
    if bad: ap.error(f'unknown configurations or settings {sorted(bad)}; known: {list(CONFIGS)}, {list(SETTINGS)}')
    torch.set_num_threads(a.threads)
    main_study = Path(a.runs).resolve() == MAIN_RUNS.resolve()
    stages, fixed = (STAGES, FIXED) if main_study else ({}, {})
    if not a.report_only:
        cache = study_data(Path(a.work), a.phantom_cases)
        todo = plan(a.seeds, tuple(a.configs), tuple(a.settings))
        k, n = (int(v) for v in a.shard.split('/'))
        todo = todo[k - 1::n]
        for i, (seed, setting, config) in enumerate(todo):
            f = Path(a.runs) / f'{run_name(seed, setting, config)}.json'
            if f.is_file(): continue
            r = run_one(seed, setting, config, cache, a)
            # a run of a stage still running lands without its scores (they wait for the stage's analysis)
            mine = [k for k, st in stages.items() if stage_runs([r], st)]
            waits = [k for k, v in hold_back(load_runs(Path(a.runs)), {k: stages[k] for k in mine})[1].items()
                     if v['held_back']] if mine else []                       # the result files are read only for a staged run
            scores = (f"{waits[0]}; scores held back until it is complete" if waits
                      else f"WT {r['wt']:.1f}, TC {r['tc']:.1f}, ET {r['et']:.1f}")
            print(f"[{i + 1}/{len(todo)}] {setting} {config:30s} seed {seed}: {scores} ({r['minutes']:.1f} min)", flush=True)
            if a.commit: commit(f, f"evidence: {setting}, {config}, seed {seed} ({scores})")
    print(write_report(Path(a.runs), Path(a.results), stages, fixed))

if __name__ == '__main__': main()
