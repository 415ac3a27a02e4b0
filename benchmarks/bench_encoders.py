"""The M encoders as one grouped network or one after another: which is faster here (issue 13, CPU speed)?

    .venv/bin/python benchmarks/bench_encoders.py            # writes benchmarks/encoders.md and .json
    .venv/bin/python benchmarks/bench_encoders.py --reps 1   # smoke

`DMAFNet(grouped_encoders=True)` runs the four single-channel encoders as one convolution with `groups=4` per layer;
`False` runs each encoder on its own channel. Both compute the same function (tested in nbs/05_network). The
choice was made on an older torch, where batch-1 3D convolutions one by one fell back to a slow kernel; this script
measures it again on the torch at hand. Timed: the encoders' forward + backward (the loss: the mean of every level's
features), and for 3D also the forward alone under `no_grad` (evaluation), at 1 and 2 threads, the two ways
interleaved (A, B, A, B, …) so that load drifting on a shared machine hits both alike; medians of `--reps`.
"""
from __future__ import annotations
import argparse, statistics, sys, time
from pathlib import Path
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'benchmarks')); sys.path.insert(0, str(ROOT))
from provenance import provenance, write_json, write_text
from dmafnet.network import DMAFNet, grouped_encode

# (what, spatial dims, input shape B×M×S…, training step or evaluation)
CASES = [('phantom preset (2D demo), 8 × 80×96', 2, (8, 4, 80, 96), True),
         ('study preset (2D), 8 × 64×64', 2, (8, 4, 64, 64), True),
         ('brats2020 preset (3D), 1 × 80³', 3, (1, 4, 80, 80, 80), True),
         ('3D evaluation window, 1 × 80³, no_grad', 3, (1, 4, 80, 80, 80), False)]

def encode(net:DMAFNet, x:torch.Tensor, grouped:bool)->list:
    "Per level B×M×C×S…, either way."
    if grouped: return grouped_encode(net.encoders, x)
    return [torch.stack(level, 1) for level in zip(*[e(x[:, m:m + 1]) for m, e in enumerate(net.encoders)])]

def once(net:DMAFNet, x:torch.Tensor, grouped:bool, train:bool)->float:
    net.zero_grad(set_to_none=True); t0 = time.perf_counter()
    if train: sum(level.mean() for level in encode(net, x, grouped)).backward()
    else:
        with torch.no_grad(): encode(net, x, grouped)
    return time.perf_counter() - t0

def measure(dims:int, shape:tuple, train:bool, threads:int, reps:int)->dict:
    torch.set_num_threads(threads); torch.manual_seed(0)
    net, x = DMAFNet(spatial_dims=dims), torch.randn(*shape)
    for grouped in (True, False): once(net, x, grouped, train)          # warm-up
    times = {True: [], False: []}
    for _ in range(reps):
        for grouped in (True, False): times[grouped].append(once(net, x, grouped, train))
    g, s = statistics.median(times[True]), statistics.median(times[False])
    return dict(threads=threads, grouped_s=round(g, 4), one_by_one_s=round(s, 4), grouped_over_one_by_one=round(g / s, 3))

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--reps', type=int, default=5)
    ap.add_argument('--threads', type=int, nargs='*', default=[1, 2])
    ap.add_argument('--out', default=str(ROOT / 'benchmarks' / 'encoders'))
    ap.add_argument('--note', default='', help='a line on the machine state (e.g. "quiet")')
    a = ap.parse_args()
    rows = []
    for what, dims, shape, train in CASES:
        for threads in a.threads:
            r = dict(case=what, **measure(dims, shape, train, threads, a.reps)); rows.append(r); print(r, flush=True)
    res = dict(provenance=provenance(), reps=a.reps, note=a.note, rows=rows)
    out = Path(a.out)
    write_json(out.with_suffix('.json'), res)
    p = res['provenance']
    L = ['# Encoders: one grouped network or one after another', '',
         f"{p['date']} · commit {p['commit']} · {p['machine']} · torch {p['torch']} · median of {a.reps} interleaved repetitions"
         + (f" · {a.note}" if a.note else ''), '',
         'Forward + backward of the four encoders (evaluation: forward alone), `DMAFNet(grouped_encoders=True)` vs `False`. '
         'Made by `benchmarks/bench_encoders.py`.', '',
         '| input | threads | grouped (s) | one by one (s) | grouped ÷ one by one |', '|---|---|---|---|---|']
    L += [f"| {r['case']} | {r['threads']} | {r['grouped_s']} | {r['one_by_one_s']} | {r['grouped_over_one_by_one']} |" for r in rows]
    write_text(out.with_suffix('.md'), '\n'.join(L) + '\n')
    print('\n'.join(L))

if __name__ == '__main__':
    main()
