"""Validation before and after the one inference path (issue 12): cost, scores, and which epoch each picks as best.

    .venv/bin/python benchmarks/bench_validation.py               # phantom (demo) and study presets, short runs
    .venv/bin/python benchmarks/bench_validation.py --epochs 2 --steps 5 --presets study   # smoke

Until commit a08a501 validation had its own inference (`trainparts.predict_logits`: 2D whole slices, skipping empty
ones; 3D windows with 25 % overlap and Gaussian blending; no background rule), unlike the evaluation that reports the
chosen checkpoint. Now it calls `dmafnet.inference.predict_subsets` with evaluation's settings (training patch, 50 %
overlap, plain averaging, signal-free voxels background) and encodes each window once for all validation subsets.
This script trains one short run per preset and, after every epoch, validates the same weights both ways: the old
function is loaded from git (`git show a08a501:dmafnet/trainparts.py`) into this process, over today's modules.
Writes benchmarks/validation.md and .json (machine, commit, date).
"""
from __future__ import annotations
import argparse, importlib.util, subprocess, sys, tempfile, time, warnings
from datetime import datetime, timezone
from pathlib import Path
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT)); sys.path.insert(0, str(ROOT / 'benchmarks'))
from provenance import git_commit, machine, write_json, write_text
from dmafnet.config import preset
from dmafnet.train import train
from dmafnet.trainparts import validate, summarise_validation
OLD = 'a08a501'

def old_validate():
    "`validate` as it was at commit a08a501, its relative imports resolved against today's package."
    src = subprocess.run(['git', 'show', f'{OLD}:dmafnet/trainparts.py'], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    path = Path(tempfile.mkdtemp()) / 'trainparts_a08a501.py'; path.write_text(src)
    spec = importlib.util.spec_from_file_location('dmafnet._trainparts_a08a501', path, submodule_search_locations=None)
    mod = importlib.util.module_from_spec(spec); mod.__package__ = 'dmafnet'; spec.loader.exec_module(mod)
    return mod.validate

def run(name:str, epochs:int, steps:int, work:Path, before)->dict:
    cfg = preset(name, out=str(work / name), epochs=epochs, steps_per_epoch=steps, val_every=epochs + 1, progress=False, seed=1037)
    rows = []
    def both(event, trainer):
        if event != 'epoch': return
        out = dict(epoch=trainer.epoch)
        for key, fn in (('before', before), ('after', validate)):
            t0 = time.perf_counter(); df = fn(trainer.model, trainer.val_set, cfg, trainer.amp_dtype, epoch=trainer.epoch)
            out[f'{key}_seconds'] = round(time.perf_counter() - t0, 2)
            out[f'{key}_val_mean'] = round(100 * summarise_validation(df, cfg.regions)['val_mean'], 2)
        rows.append(out); print(name, out, flush=True)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore'); train(cfg, callbacks=[both])
    pick = {k: max(rows, key=lambda r: r[f'{k}_val_mean'])['epoch'] for k in ('before', 'after')}
    return dict(preset=name, epochs=epochs, steps_per_epoch=steps, val_cases=cfg.val_cases, patch_size=list(cfg.patch_size),
                spatial_dims=cfg.spatial_dims, epochs_table=rows, best_epoch=pick,
                seconds_ratio=round(sum(r['before_seconds'] for r in rows) / sum(r['after_seconds'] for r in rows), 2))

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--presets', nargs='*', default=['phantom', 'study'])
    ap.add_argument('--epochs', type=int, default=6); ap.add_argument('--steps', type=int, default=25)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--out', default=str(ROOT / 'benchmarks' / 'validation'))
    a = ap.parse_args(); torch.set_num_threads(a.threads)
    before = old_validate(); work = Path(tempfile.mkdtemp())
    res = [run(p, a.epochs, a.steps, work, before) for p in a.presets]
    commit = git_commit()
    meta = dict(machine=machine(), threads=a.threads, commit=commit, date=datetime.now(timezone.utc).strftime('%Y-%m-%d'))
    write_json(Path(a.out + '.json'), dict(meta, runs=res))
    md = ["# Validation before and after the one inference path\n",
          f"Machine: {meta['machine']}, {a.threads} threads; commit {commit} (validation before: {OLD}); {meta['date']}. "
          "One short run per preset (seed 1037); after every epoch the same weights are validated both ways "
          "(mean Dice over regions and validation subsets, points). Produced by `benchmarks/bench_validation.py`.\n"]
    for r in res:
        md += [f"\n## {r['preset']} ({r['spatial_dims']}D, patch {'×'.join(map(str, r['patch_size']))}, {r['val_cases']} validation cases, "
               f"{r['epochs']} epochs × {r['steps_per_epoch']} steps)\n",
               "| epoch | before: val mean | after: val mean | before: s | after: s |", "|---|---|---|---|---|"]
        md += [f"| {e['epoch']} | {e['before_val_mean']:.2f} | {e['after_val_mean']:.2f} | {e['before_seconds']:.1f} | {e['after_seconds']:.1f} |"
               for e in r['epochs_table']]
        md += [f"\nBest epoch: before {r['best_epoch']['before']}, after {r['best_epoch']['after']}; "
               f"validation time before / after: {r['seconds_ratio']:.2f}×.\n"]
    write_text(Path(a.out + '.md'), '\n'.join(md)); print('\n'.join(md))

if __name__ == '__main__': main()
