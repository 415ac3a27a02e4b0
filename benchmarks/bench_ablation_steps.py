"""Training-step time of each configuration of the phantom study, relative to `mean` fusion (issue 8's step-time table).

    .venv/bin/python benchmarks/bench_ablation_steps.py            # 2D phantom preset (the demo's setting)
    .venv/bin/python benchmarks/bench_ablation_steps.py --dims 3   # 3D, 64³ patches, batch 1

One step is `Trainer.train_step` (forward, criterion, DTM where on, backward, AdamW), timed by `bench_train.measure`
on batches from the run's own loader; the configurations run one after another in one process. Writes
benchmarks/ablation_steps_{2d,3d}.md and .json. Target (issue 8): the full model ≤ 1.6× the `mean` fusion step.
"""
from __future__ import annotations
import argparse, os, sys, tempfile
from datetime import datetime, timezone
from pathlib import Path
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'benchmarks')); sys.path.insert(0, str(ROOT))
from provenance import git_commit, machine, write_json, write_text
from bench_train import phantom_cache, measure
from dmafnet.config import preset

NO_DISTILL = dict(lambda_cov=0.0, lambda_att=0.0, lambda_pro=0.0)
CONFIGS = {  # name → TrainConfig changes
    'mean fusion': dict(fusion='mean', loss_kwargs=NO_DISTILL, dtm=False),
    'concat fusion': dict(fusion='concat', loss_kwargs=NO_DISTILL, dtm=False),
    'DMAF': dict(fusion='dmaf', loss_kwargs=NO_DISTILL, dtm=False),
    'DMAF + relation (CCA, MAA)': dict(fusion='dmaf', loss_kwargs=dict(NO_DISTILL, lambda_cov=0.1, lambda_att=0.1), dtm=False),
    'DMAF + relation + prototype': dict(fusion='dmaf', loss_kwargs={}, dtm=False),
    'full DMAF-Net (+ DTM)': dict(fusion='dmaf', loss_kwargs={}, dtm=True),
}

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--dims', type=int, default=2, choices=[2, 3])
    ap.add_argument('--steps', type=int, default=10)
    ap.add_argument('--warmup', type=int, default=2)
    ap.add_argument('--threads', type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    shape = {} if a.dims == 2 else dict(spatial_dims=3, patch_size=(64, 64, 64), batch_size=1, steps_per_epoch=50)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cache = phantom_cache(Path(tmp), n_cases=6)
        for name, changes in CONFIGS.items():
            cfg = preset('phantom', data=str(cache), out=str(Path(tmp) / 'run'), threads=a.threads, progress=False,
                         val_every=0, **shape, **changes)
            r = measure(cfg, a.steps, a.warmup); r['config'] = name; rows.append(r)
            print(name, r['step_s'], flush=True)
    base = rows[0]['step_s']
    for r in rows: r['relative_to_mean'] = round(r['step_s'] / base, 2)
    commit = git_commit()
    meta = dict(date=datetime.now(timezone.utc).isoformat(timespec='seconds'), commit=commit, torch=torch.__version__,
                machine=machine(), threads=a.threads, load=os.getloadavg())
    tag = f'{a.dims}d'
    write_json(ROOT / 'benchmarks' / f'ablation_steps_{tag}.json', dict(meta=meta, rows=rows))
    full = rows[-1]['relative_to_mean']
    lines = [f'# Step time of the study configurations ({a.dims}D)', '',
             f"{meta['date']} · commit {commit} · {meta['machine']} · torch {torch.__version__} · {a.threads} threads · "
             f"load {meta['load'][0]:.1f}", '',
             f"Phantom preset{'' if a.dims == 2 else ', 3D 64³ patches, batch 1'}: patch {'×'.join(map(str, rows[0]['patch_size']))}, "
             f"batch {rows[0]['batch_size']}, base width {rows[0]['base_width']}; median of {a.steps} steps after {a.warmup}.", '',
             '| configuration | parameters (M) | step s | relative to mean | peak RSS GB |', '|---|---|---|---|---|']
    lines += [f"| {r['config']} | {r['params_m']} | {r['step_s']:.3f} | {r['relative_to_mean']:.2f}× | {r['cpu_peak_gb']} |" for r in rows]
    lines += ['', f"Full DMAF-Net over mean fusion: **{full:.2f}×** (target ≤ 1.6×: {'met' if full <= 1.6 else 'not met'}). "
              'Peak RSS is the process maximum so far (configurations run in order in one process).',
              '', 'Made by `benchmarks/bench_ablation_steps.py`.', '']
    write_text(ROOT / 'benchmarks' / f'ablation_steps_{tag}.md', '\n'.join(lines))
    print('\n'.join(lines))

if __name__ == '__main__': main()
