"""How close the CPU training step comes to the machine's convolution speed (issue 13), and where its time goes.

    .venv/bin/python benchmarks/bench_efficiency.py                 # phantom (2D) and brats2020 (3D), 2 threads
    .venv/bin/python benchmarks/bench_efficiency.py --threads 1 --steps 3

For each preset, in one process: the GFLOP/s of a whole training step (`Trainer.train_step`: forward, criterion, DTM,
backward, AdamW), its FLOPs counted by `torch.utils.flop_counter.FlopCounterMode` (convolutions and matrix products;
norms and element-wise work count zero) and its time the median of `--steps` steps; the GFLOP/s of a large reference
convolution of the same dimensionality (forward + backward) measured the same way right after; their ratio. Targets:
2D >= 60 %, 3D >= 40 %. Then `torch.profiler` over the same steps: the operators with the most self CPU time, so the
gap can be read from the profile. Writes benchmarks/efficiency.md and .json.
"""
from __future__ import annotations
import argparse, statistics, sys, tempfile, time, warnings
from pathlib import Path
import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'benchmarks')); sys.path.insert(0, str(ROOT))
from provenance import provenance, write_json, write_text
from bench_train import phantom_cache
from dmafnet.config import preset
from dmafnet.train import Trainer

TARGETS = {2: 0.60, 3: 0.40}
# reference convolutions, each 12–20 GFLOP forward + backward; the fastest (of these and of both memory formats) counts
REFERENCE = {2: [(8, 32, 192, 192), (8, 64, 112, 112), (8, 128, 56, 56)],
             3: [(1, 32, 64, 64, 64), (1, 64, 40, 40, 40), (1, 128, 24, 24, 24)]}

def counted(fn)->float:
    "FLOPs of one call of `fn` (the counter's convolutions and matrix products)."
    with FlopCounterMode(display=False) as fc: fn()
    return float(fc.get_total_flops())

def timed(fn, steps:int, warmup:int=1)->float:
    for _ in range(warmup): fn()
    ts = []
    for _ in range(steps):
        t0 = time.perf_counter(); fn(); ts.append(time.perf_counter() - t0)
    return statistics.median(ts)

def reference(dims:int, steps:int)->dict:
    "The machine's attainable convolution speed: the fastest of large 3×3(×3) convolutions, forward + backward."
    tried = []
    for shape in REFERENCE[dims]:
        for fmt in (torch.contiguous_format, torch.channels_last if dims == 2 else torch.channels_last_3d):
            ch = shape[1]
            conv = (torch.nn.Conv2d if dims == 2 else torch.nn.Conv3d)(ch, ch, 3, padding=1).to(memory_format=fmt)
            x = torch.randn(shape).contiguous(memory_format=fmt).requires_grad_()
            def step():
                conv.zero_grad(set_to_none=True); x.grad = None
                conv(x).sum().backward()
            flops, s = counted(step), timed(step, steps)
            tried.append(dict(shape=list(shape), format='contiguous' if fmt == torch.contiguous_format else 'channels-last',
                              gflop=round(flops / 1e9, 2), seconds=round(s, 4), gflops_per_s=round(flops / s / 1e9, 1)))
    best = max(tried, key=lambda r: r['gflops_per_s'])
    return dict(best, tried=tried)

def training_step(cfg, steps:int, profile_rows:int=12)->dict:
    with warnings.catch_warnings():
        warnings.simplefilter('ignore'); trainer = Trainer(cfg)
    trainer.batches.set_epoch(0)
    it = iter(trainer.loader)
    batches = [next(it) for _ in range(steps + 2)]
    k = iter(range(10**6))
    step = lambda: trainer.train_step(batches[next(k) % len(batches)])
    flops = counted(step)
    s = timed(step, steps)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(2): step()
    total = sum(e.self_cpu_time_total for e in prof.key_averages())
    top = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[:profile_rows]
    rows = [dict(op=e.key, share=round(e.self_cpu_time_total / total, 3), calls=int(e.count / 2)) for e in top]
    return dict(gflop=round(flops / 1e9, 2), seconds=round(s, 4), gflops_per_s=round(flops / s / 1e9, 1), profile=rows)

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--steps', type=int, default=5)
    ap.add_argument('--presets', nargs='*', default=['phantom', 'phantom+cl', 'brats2020', 'brats2020+cl'],
                    help="presets; '+cl': with channels_last")
    ap.add_argument('--out', default=str(ROOT / 'benchmarks' / 'efficiency'))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    res = dict(provenance=provenance(threads=a.threads, steps=a.steps), presets={})
    refs = {}
    with tempfile.TemporaryDirectory() as tmp:
        cache = phantom_cache(Path(tmp), n_cases=4)
        for name in a.presets:
            base, cl = name.removesuffix('+cl'), name.endswith('+cl')
            cfg = preset(base, data=str(cache), out=str(Path(tmp) / name), threads=a.threads, progress='off', val_every=0,
                         workers=0, steps_per_epoch=1000, channels_last=cl)
            step = training_step(cfg, a.steps)
            ref = refs.setdefault(cfg.spatial_dims, reference(cfg.spatial_dims, a.steps))
            ratio = step['gflops_per_s'] / ref['gflops_per_s']
            res['presets'][name] = dict(dims=cfg.spatial_dims, patch_size=list(cfg.patch_size), batch_size=cfg.batch_size,
                                        base_width=cfg.base_width, step=step, reference=ref, ratio=round(ratio, 3),
                                        target=TARGETS[cfg.spatial_dims], met=ratio >= TARGETS[cfg.spatial_dims])
            print(f"{name}: step {step['gflops_per_s']} GFLOP/s, reference {ref['gflops_per_s']} GFLOP/s, ratio {ratio:.0%}", flush=True)
    out = Path(a.out)
    write_json(out.with_suffix('.json'), res)
    p = res['provenance']
    lines = ['# CPU efficiency of the training step', '', f"{p['date']} · commit {p['commit']} · {p['machine']} · torch "
             f"{p['torch']} · {a.threads} thread(s) · median of {a.steps} steps", '',
             '| preset | dims | patch × batch | step GFLOP | step s | step GFLOP/s | reference GFLOP/s | ratio | target |',
             '|---|---|---|---|---|---|---|---|---|']
    for name, r in res['presets'].items():
        lines.append(f"| {name} | {r['dims']}D | {'×'.join(map(str, r['patch_size']))} × {r['batch_size']} | {r['step']['gflop']} | "
                     f"{r['step']['seconds']} | {r['step']['gflops_per_s']} | {r['reference']['gflops_per_s']} | "
                     f"{r['ratio']:.0%} | {r['target']:.0%} {'met' if r['met'] else 'not met'} |")
    for name, r in res['presets'].items():
        lines += ['', f"**Where the {name} step's CPU time goes** (self time, 2 profiled steps):", '',
                  '| operator | share | calls per step |', '|---|---|---|']
        lines += [f"| `{e['op']}` | {e['share']:.1%} | {e['calls']} |" for e in r['step']['profile']]
    for name, r in {r['dims']: r for r in res['presets'].values()}.items():
        lines += ['', f"**Reference convolutions ({r['dims']}D)**, forward + backward: " + '; '.join(
            f"{'×'.join(map(str, t['shape']))} {t['format']} {t['gflops_per_s']} GFLOP/s" for t in r['reference']['tried'])]
    lines += ['', 'FLOPs are those of `FlopCounterMode` (convolutions and matrix products only), so the ratio counts '
              'instance norm, activations, interpolation and the optimiser as time without FLOPs. The reference is the '
              'fastest of three 3×3(×3) convolutions in both memory formats. Made by `benchmarks/bench_efficiency.py`; on a shared machine the numbers vary with '
              'the load, the ratio less (both halves are measured in the same minute).', '']
    write_text(out.with_suffix('.md'), '\n'.join(lines))
    print('\n'.join(lines))

if __name__ == '__main__':
    main()
