"""The GPU acceptance check (issue 13): one command on a fresh GPU machine after `make install`, about 8 minutes on one GPU.

    .venv/bin/python benchmarks/gpu_check.py              # writes benchmarks/gpu.md and benchmarks/gpu.json
    .venv/bin/python benchmarks/gpu_check.py --smoke --results /tmp/gpu   # every section at toy size, any device (tests)

On a GPU machine without network (and so without `make install`) whose Python has torch with CUDA, numpy, scipy,
pandas and matplotlib: download the pure-Python rest here with `tools/gpu_wheels.sh` (into `.whl/`, git-ignored), carry
that folder, and run there

    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site &&
    timeout 560 python3 benchmarks/gpu_check.py --results $OUT/gpu --budget-s 480

The results files are rewritten after every section and every speed variant, so a run stopped by a failure or a
time limit leaves what it measured; `--budget-s` skips what would start after that many seconds (compiled variants
come last, fp16-compile last of all).

Sections, all on the built-in phantom at 1 mm (BraTS-sized volumes):
1. the CUDA smoke run: the brats2020 preset (3D, 80³ patches, batch 1, precision 'auto', DTM on) for a few hundred
   steps; the loss must fall (mean of the last 50 steps below 0.8 × that of the first 50);
2. steps/s and peak memory of the brats2020 step for bf16 and fp16, eager and `torch.compile`, with channels-last-3d
   (and bf16 eager without it, for reference); a first epoch warms up (and compiles), the second is timed;
3. the 15-subset evaluation time of one BraTS-sized case (encode once, sliding windows of 80³, overlap 0.5);
4. a 2-process DDP run (torchrun, NCCL) where two GPUs exist, else said to be skipped.

The goal for the brats2020 preset is at least 9 steps/s on one H100-class GPU (the paper's 300 epochs of 219 cases
in under 2 hours). Without CUDA (and without --smoke) the results files say that the check is unmeasured, and why.
"""
from __future__ import annotations
import argparse, json, os, subprocess, sys, tempfile, time, traceback
from pathlib import Path
import numpy as np, pandas as pd, torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'benchmarks')); sys.path.insert(0, str(ROOT))
from provenance import provenance
from dmafnet.config import preset
from dmafnet.core import atomic_write
from dmafnet.train import Trainer
from dmafnet.traindata import prepare_data
from dmafnet.trainparts import load_model, resolve_precision
from dmafnet.inference import inference_settings
from dmafnet.evaluate import evaluate, find_split

GOAL_STEPS_PER_S = 9.0

def sizes(smoke:bool)->dict:
    "The check's sizes: the real ones, or toy ones that run in seconds on a CPU (--smoke)."
    if smoke: return dict(phantom=dict(phantom_cases=4, phantom_spacing=4.0), model=dict(patch_size=(32, 32, 32), base_width=4),
                          smoke_steps=4, timed_steps=2, window=(32, 32, 32), subsets=[14, 0])
    return dict(phantom=dict(phantom_cases=6, phantom_spacing=1.0), model={}, smoke_steps=300, timed_steps=40,
                window=None, subsets=None)

def config(size:dict, out:Path, **changes):
    return preset('brats2020', out=str(out), progress='off', val_every=0, **size['phantom'], **size['model'], **changes)

def loader_workers(device:str)->int:
    "Data-loader processes: on CUDA as many as the host spares (a 1 mm case's crop and rotation cost 0.03–1.2 s on a CPU), else the preset's."
    return min(12, max(1, (os.cpu_count() or 2) - 2)) if device.startswith('cuda') else preset('brats2020').workers

def error_text(e:BaseException)->str:
    "One line naming an exception, also for one without a message."
    return f"{type(e).__name__}: {(str(e).strip().splitlines() or [repr(e)])[0][:300]}"

def release():
    "Forget compiled graphs and cached GPU memory between variants (a failure or compile cache must not carry over)."
    torch._dynamo.reset()
    if torch.cuda.is_available(): torch.cuda.empty_cache()

def reset_peak():
    if torch.cuda.is_available(): torch.cuda.reset_peak_memory_stats()

def smoke_run(size:dict, work:Path, device:str)->dict:
    "Section 1: a few hundred steps of the brats2020 preset; does the loss fall?"
    cfg = config(size, work / 'smoke', epochs=1, steps_per_epoch=size['smoke_steps'], device=device, workers=loader_workers(device))
    trainer, losses = Trainer(cfg), []
    trainer.callbacks.append(lambda e, t: losses.append(t.last_parts['loss']) if e == 'step' and t.last_parts else None)
    t0 = time.perf_counter(); reset_peak(); trainer.fit()
    n = max(1, min(50, len(losses) // 3))
    first, last = float(np.mean(losses[:n])), float(np.mean(losses[-n:]))
    log = pd.read_csv(work / 'smoke' / 'log.csv'); row = log.iloc[-1]
    return dict(steps=len(losses), precision=str(trainer.amp_dtype), loss_first=round(first, 4), loss_last=round(last, 4),
                loss_falls=bool(last < 0.8 * first), nonfinite=int(trainer.nonfinite_total),
                scaler_skips=int(log['scaler_skips'].sum()) if 'scaler_skips' in log else 0,   # fp16 only
                steps_per_s=round(float(row.steps_per_s), 2), minutes=round((time.perf_counter() - t0) / 60, 2),
                peak_gb=round(float(row.get('cuda_peak_gb', row.cpu_peak_gb)), 2))

# eager first (cheap, and the reference), compiled after: compilation is the part most likely to fail or run long
VARIANTS = [('bf16', False, True), ('fp16', False, True), ('bf16', False, False), ('bf16', True, True), ('fp16', True, True)]

def speed(size:dict, work:Path, cache:Path, device:str, variants=VARIANTS, rows:list|None=None,
          save=lambda: None, left=lambda: float('inf'))->list[dict]:
    "Section 2: steps/s (second epoch) and peak memory per precision × compile × channels-last; `save()` after each variant, none started once `left()` ≤ 0."
    rows = [] if rows is None else rows
    for precision, compiled, cl in variants:
        name = f"{precision}{' compile' if compiled else ''}{' channels-last-3d' if cl else ''}"
        row = dict(variant=name, precision=precision, compile=compiled, channels_last=cl)
        if left() <= 0: row['skipped'] = 'time budget'; rows.append(row); save(); continue
        out = work / name.replace(' ', '_')
        try:
            cfg = config(size, out, data=str(cache), epochs=2, steps_per_epoch=size['timed_steps'], precision=precision,
                         compile=compiled, channels_last=cl, device=device, workers=loader_workers(device))
            reset_peak(); Trainer(cfg).fit()                    # epoch 1: warm-up (and compilation); epoch 2: timed
            log = pd.read_csv(out / 'log.csv')
            row.update(warmup_s=round(float(log.time_s.iloc[0]), 1), steps_per_s=round(float(log.steps_per_s.iloc[-1]), 2),
                       peak_gb=round(float(log.get('cuda_peak_gb', log.cpu_peak_gb).iloc[-1]), 2))
        except Exception as e:   # one variant failing (e.g. fp16 autocast unsupported) is a result, not the end
            traceback.print_exc(); row['error'] = error_text(e)
        finally: release()
        rows.append(row); print('gpu_check speed:', row, flush=True); save()
    return rows

def evaluation_time(size:dict, work:Path, cache:Path, device:str)->dict:
    "Section 3: one BraTS-sized case, all 15 subsets (encode once), with the smoke run's weights."
    ckpt = work / 'smoke' / 'checkpoints' / 'last.pt'
    model, cfg = load_model(ckpt, device=device)
    name = find_split('test', cache, cfg, ckpt)[:1]
    settings = inference_settings(cfg)
    if size['window']: settings['patch_size'] = size['window']
    dev = torch.device(device)
    amp = resolve_precision('auto', dev) if dev.type == 'cuda' else None
    t0 = time.perf_counter()
    ev = evaluate(model, name, data_dir=cache, subset_ids=size['subsets'], progress='off', amp_dtype=amp, **settings)
    if dev.type == 'cuda': torch.cuda.synchronize()
    return dict(case=name[0], shape=str(ev.cases['shape'].iloc[0]),
                subsets=int(ev.scores.subset_id.nunique()), seconds=round(time.perf_counter() - t0, 1),
                inference_seconds=round(float(ev.cases['inference_seconds'].iloc[0]), 1),   # the rest: scoring on the CPU
                patch_size=list(settings['patch_size']), overlap=settings.get('overlap', 0.5))

def ddp(size:dict, work:Path, cache:Path)->dict:
    "Section 4: torchrun with 2 processes (NCCL), when there are two GPUs."
    if torch.cuda.device_count() < 2: return dict(skipped=f'{torch.cuda.device_count()} GPU(s): DDP needs two')
    out = work / 'ddp'
    sets = [f'{k}={v}' for k, v in dict(val_every=0, steps_per_epoch=size['timed_steps'], progress='off').items()]
    launcher = work / 'ddp_train.py'   # the package's train command without an installed console script
    launcher.write_text(f"import sys; sys.path.insert(0, {str(ROOT)!r})\nfrom dmafnet.train import train_cli\ntrain_cli()\n")
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2', str(launcher),
           '--preset', 'brats2020', '--data', str(cache), '--out', str(out), '--epochs', '2', '--set', *sets]
    t0 = time.perf_counter()
    try: r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired: return dict(error='torchrun did not finish within 300 s')
    if r.returncode: return dict(error=r.stderr.strip().splitlines()[-1][:300] if r.stderr.strip() else f'exit {r.returncode}')
    log = pd.read_csv(out / 'log.csv')
    return dict(world=2, steps_per_s=round(float(log.steps_per_s.iloc[-1]), 2), minutes=round((time.perf_counter() - t0) / 60, 2))

def markdown(res:dict)->str:
    p = res['provenance']
    lines = ['# GPU acceptance check', '', f"{p['date']} · commit {p['commit']} · device: **{res['device']}** · "
             f"host: {p['machine']} · torch {p['torch']}", '']
    if res.get('unmeasured'):
        return '\n'.join(lines + [f"**Unmeasured.** {res['unmeasured']}", '',
                                  'Run `.venv/bin/python benchmarks/gpu_check.py` on a machine with an NVIDIA GPU after '
                                  '`make install` (on one without network: see the script\'s docstring, `tools/gpu_wheels.sh`); '
                                  'it rewrites this file with the numbers.', ''])
    def failed(key):   # a section that did not run or failed: one line saying so, else None
        d = res.get(key)
        if d is None: return '*Not reached* (the check stopped before this section).'
        if isinstance(d, dict) and (d.get('error') or d.get('skipped')):
            return f"**Failed:** `{d['error']}`" if d.get('error') else f"Skipped: {d['skipped']}."
    s = res.get('smoke')
    lines += ['## 1. Smoke run (brats2020 preset, 80³, 1 mm phantom)', '',
              failed('smoke') or (f"{s['steps']} steps at {s['precision']}: loss {s['loss_first']} (first steps) → {s['loss_last']} (last): "
              f"{'falls' if s['loss_falls'] else '**does not fall**'}; {s['nonfinite']} non-finite steps ({s.get('scaler_skips', 0)} skipped by the fp16 scaler); "
              f"{s['steps_per_s']} steps/s; peak {s['peak_gb']} GB; {s['minutes']} min."), '', '## 2. Training step speed', '']
    if isinstance(res.get('speed'), list):
        lines += ['| variant | steps/s | peak GB | warm-up s | note |', '|---|---|---|---|---|']
        for r in res['speed']:
            note = (f"**failed:** `{r['error']}`" if r.get('error') else f"skipped: {r['skipped']}" if r.get('skipped')
                    else 'goal met' if r['steps_per_s'] >= GOAL_STEPS_PER_S else f'below the {GOAL_STEPS_PER_S:g} steps/s goal')
            lines.append(f"| {r['variant']} | {r.get('steps_per_s', '')} | {r.get('peak_gb', '')} | {r.get('warmup_s', '')} | {note} |")
    else: lines.append(failed('speed'))
    e = res.get('evaluation')
    lines += ['', '## 3. Evaluation', '', failed('evaluation') or (f"One case ({e['case']}, {e['shape']} voxels), {e['subsets']} subsets, "
              f"windows {e['patch_size']} at overlap {e['overlap']}: **{e['seconds']} s** ({e['inference_seconds']} s of it "
              "inference; the rest scoring on the CPU)."), '', '## 4. DDP', '']
    d = res.get('ddp')
    lines.append(failed('ddp') or f"2 processes: {d['steps_per_s']} steps/s per process, {d['minutes']} min.")
    done = f"Whole check: {res['minutes']} min." if 'minutes' in res else '**The check did not finish**: the numbers above are what it wrote before it stopped.'
    return '\n'.join(lines + ['', f"{done} Made by `benchmarks/gpu_check.py`.", ''])

def write(res:dict, out:Path):
    "Write `out`.json and `out`.md atomically (called after every section: a stopped check keeps what it measured)."
    for suffix, text in (('.json', json.dumps(res, indent=1, default=str)), ('.md', markdown(res))):
        with atomic_write(out.with_name(out.name + suffix)) as f: f.write(text)

def section(res:dict, key:str, fn, save, left=lambda: float('inf')):
    "Run one section into `res[key]`: its result, or its error (the check goes on), or 'skipped' past the time budget; then save."
    if left() <= 0: res[key] = dict(skipped='time budget')
    else:
        try: res[key] = fn()
        except Exception as e: traceback.print_exc(); res[key] = dict(error=error_text(e))
    print('gpu_check', key, json.dumps(res[key], default=str), flush=True); save()

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--smoke', action='store_true', help='toy sizes on whatever device there is (the test of this script)')
    ap.add_argument('--results', default=str(ROOT / 'benchmarks' / 'gpu'), help='writes this path + .json/.md')
    ap.add_argument('--work', default=None, help='run folders (default: a temporary folder)')
    ap.add_argument('--budget-s', type=float, default=float('inf'), help='start no section or speed variant after this many seconds')
    a = ap.parse_args()
    cuda = torch.cuda.is_available()
    device = 'cuda' if cuda else 'cpu'
    res = dict(device=torch.cuda.get_device_name(0) if cuda else 'CPU (no CUDA device)', smoke_mode=a.smoke,
               provenance=provenance())
    t0 = time.perf_counter(); out = Path(a.results)
    save = lambda: write(res, out)
    left = lambda: a.budget_s - (time.perf_counter() - t0)
    if not cuda and not a.smoke:
        res['unmeasured'] = ("No CUDA device was available where this file was written (torch "
                             f"{torch.__version__}, CUDA available: False), so the GPU path (AMP, compile, NCCL DDP) is unmeasured.")
    else:
        size = sizes(a.smoke)
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(a.work or tmp)
            section(res, 'smoke', lambda: smoke_run(size, work, device), save, left)
            cache = prepare_data(config(size, work / 'smoke')).cache
            res['speed'] = []
            speed(size, work, cache, device, VARIANTS if cuda else [('fp32', False, True)], res['speed'], save, left)
            if (work / 'smoke' / 'checkpoints' / 'last.pt').is_file():
                section(res, 'evaluation', lambda: evaluation_time(size, work, cache, device), save, left)
            else: res['evaluation'] = dict(skipped='no smoke-run checkpoint to evaluate'); save()
            section(res, 'ddp', (lambda: ddp(size, work, cache)) if cuda else (lambda: dict(skipped='no CUDA device')), save, left)
    res['minutes'] = round((time.perf_counter() - t0) / 60, 2)
    save()
    print(markdown(res))

if __name__ == '__main__':
    main()
