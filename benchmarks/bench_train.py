"""Training throughput of the presets: CPU steps/s of `phantom` and `brats2020`; on CUDA, steps/s and peak GPU memory
of `brats2020` with and without `torch.compile`.

    .venv/bin/python benchmarks/bench_train.py                       # CPU: 10 timed steps per preset
    .venv/bin/python benchmarks/bench_train.py --steps 2 --warmup 1  # smoke
    python benchmarks/bench_train.py --cuda-steps 100                # on a GPU machine (CPU part too unless --no-cpu)

Writes benchmarks/train.md and benchmarks/train.json. A step is what `Trainer.train_step` does: batch to the device,
forward (DMAFNet) + DMAFCriterion + DTM under the preset's precision, backward, gradient norm, AdamW step. Batches
come from the run's own DataLoader (the preset's augmentation; their loading time is reported apart). Data: the
built-in phantom at 2 mm (99×117×95 voxels, so the brats2020 preset's 80³ crops fit), generated into a temporary
folder unless --data names a preprocessed cache. The network sizes are the presets' (base width 8).
"""
from __future__ import annotations
import argparse, os, platform, statistics, sys, tempfile, time, warnings
from datetime import datetime, timezone
from pathlib import Path
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from provenance import machine, git_commit, write_json, write_text
from dmafnet.config import preset
from dmafnet.train import Trainer

def phantom_cache(folder:Path, n_cases:int=6)->Path:
    from dmafnet.phantom import make_phantom
    from dmafnet.preprocess import preprocess_dataset
    make_phantom(folder/'raw', n_cases=n_cases, seed=0, spacing=2.0)
    preprocess_dataset(folder/'raw', folder/'cache', verbose=False)
    return folder/'cache'

def timed_steps(trainer, steps:int):
    "Train `steps` steps of epoch 0's batches; yield (data seconds, step seconds, the step's log) for each."
    dev = trainer.device
    trainer.batches.set_epoch(0); it = iter(trainer.loader)
    for _ in range(steps):
        t0 = time.perf_counter(); batch = next(it); t1 = time.perf_counter()
        log = trainer.train_step(batch)
        if dev.type == 'cuda': torch.cuda.synchronize(dev)
        yield t1 - t0, time.perf_counter() - t1, log

def measure(cfg, steps:int, warmup:int)->dict:
    "Median step time (and data time) over `steps` steps after `warmup` steps."
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        trainer = Trainer(cfg)
    dev = trainer.device
    if dev.type == 'cuda': torch.cuda.reset_peak_memory_stats(dev)
    timed = list(timed_steps(trainer, warmup + steps))[warmup:]
    data_s, step_s = [t[0] for t in timed], [t[1] for t in timed]
    med = statistics.median(step_s)
    n_params = sum(p.numel() for p in trainer.model.parameters())
    import resource
    out = dict(preset=cfg.preset, device=str(dev), precision=str(trainer.amp_dtype).replace('torch.', '') if trainer.amp_dtype else 'fp32',
               compile=cfg.compile, spatial_dims=cfg.spatial_dims, patch_size=list(cfg.patch_size), batch_size=cfg.batch_size,
               base_width=cfg.base_width, params_m=round(n_params / 1e6, 2), steps=steps,
               step_s=round(med, 4), steps_per_s=round(1 / med, 3), samples_per_s=round(cfg.batch_size / med, 2),
               data_s=round(statistics.median(data_s), 4), cpu_peak_gb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2))
    if dev.type == 'cuda': out['cuda_peak_gb'] = round(torch.cuda.max_memory_allocated(dev) / 2**30, 2)
    del trainer
    return out

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--steps', type=int, default=10, help="timed CPU steps per preset")
    p.add_argument('--warmup', type=int, default=2)
    p.add_argument('--cuda-steps', type=int, default=100, help="timed CUDA steps per configuration")
    p.add_argument('--cuda-warmup', type=int, default=20, help="CUDA warm-up steps (compilation happens here)")
    p.add_argument('--threads', default='1,2', help="CPU thread counts of torch to measure, comma-separated")
    p.add_argument('--no-cpu', action='store_true', help="skip the CPU measurements")
    p.add_argument('--data', help="a preprocessed cache to read (default: a fresh 2 mm phantom)")
    p.add_argument('--out', default=str(ROOT/'benchmarks'/'train'), help="results path without suffix")
    a = p.parse_args()
    threads = [int(t) for t in str(a.threads).split(',')]
    tmp = Path(tempfile.mkdtemp(prefix='bench_train_'))
    cache = Path(a.data) if a.data else phantom_cache(tmp)
    common = dict(data=str(cache), progress=False, val_every=0, steps_per_epoch=10_000, epochs=1)
    rows = []
    if not a.no_cpu:
        for n in threads:
            torch.set_num_threads(n)
            for name in ('phantom', 'brats2020'):
                cfg = preset(name, out=str(tmp/f'run_{name}_{n}'), device='cpu', workers=0, **common)
                rows.append(dict(measure(cfg, a.steps, a.warmup), threads=n)); print(rows[-1], flush=True)
    cuda = torch.cuda.is_available()
    if cuda:
        torch.set_num_threads(max(threads))
        for compile_ in (False, True):
            cfg = preset('brats2020', out=str(tmp/f'run_cuda_{compile_}'), device='cuda', compile=compile_, **common)
            try: rows.append(measure(cfg, a.cuda_steps, a.cuda_warmup))
            except Exception as e: rows.append(dict(preset='brats2020', device='cuda', compile=compile_, error=f'{type(e).__name__}: {e}'[:300]))
            print(rows[-1], flush=True)
    commit = git_commit()
    meta = dict(date=datetime.now(timezone.utc).isoformat(timespec='seconds'), commit=commit, torch=torch.__version__,
                python=platform.python_version(), machine=machine(),
                cpu_threads=threads, load_average=[round(x, 2) for x in os.getloadavg()],
                gpu=torch.cuda.get_device_name(0) if cuda else None)
    write_json(Path(a.out + '.json'), dict(meta=meta, rows=rows), indent=2)
    cols = ['preset', 'device', 'threads', 'precision', 'compile', 'patch_size', 'batch_size', 'params_m', 'steps_per_s',
            'samples_per_s', 'step_s', 'data_s', 'cpu_peak_gb', 'cuda_peak_gb']
    def table(rs):
        lines = ['| ' + ' | '.join(cols) + ' |', '|' + '---|' * len(cols)]
        for r in rs:
            if 'error' in r: lines.append(f"| {r['preset']} | {r['device']} | | {r['compile']} | failed: {r['error']} |"); continue
            lines.append('| ' + ' | '.join('×'.join(map(str, r[c])) if isinstance(r.get(c), list) else str(r.get(c, '')) for c in cols) + ' |')
        return '\n'.join(lines)
    cpu_rows = [r for r in rows if r['device'] == 'cpu']; gpu_rows = [r for r in rows if r['device'].startswith('cuda')]
    md = ["# Training throughput\n",
          f"{meta['date']}, commit {meta['commit']}, torch {meta['torch']}, Python {meta['python']}, {meta['machine']}, "
          f"load average {meta['load_average']} at the end (a shared machine: compare rows of one run only).\n",
          "One step = batch to device, DMAFNet forward + DMAFCriterion + DTM, backward, gradient norm, AdamW step "
          "(`Trainer.train_step`); median over the timed steps. `data_s`: time to get the batch from the run's "
          "DataLoader (0 workers on CPU), not included in `step_s`. Data: the phantom at 2 mm. Written by "
          "`benchmarks/bench_train.py`.\n",
          "## CPU\n", table(cpu_rows) if cpu_rows else "not measured (--no-cpu)", "",
          "## CUDA\n"]
    md.append(f"GPU: {meta['gpu']}. brats2020 preset (3D, 80³, batch 1, AMP), with and without `torch.compile`.\n\n" + table(gpu_rows)
              if cuda else "unmeasured: no GPU in this session (`python benchmarks/bench_train.py` on a CUDA machine fills this in).")
    write_text(Path(a.out + '.md'), '\n'.join(md) + '\n')
    print(Path(a.out + '.md').read_text())

if __name__ == '__main__': main()
