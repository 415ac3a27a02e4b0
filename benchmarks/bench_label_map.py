"""Probabilities → labels: `dmafnet.inference.label_map` against `argmax(0)`, on the shapes evaluation hands it.

    .venv/bin/python benchmarks/bench_label_map.py            # writes benchmarks/label_map.md and .json

Why: profiling the demo's evaluation (one 2 mm phantom case, 15 subsets, 2D model, 1 thread) put 3.0 of its 38.9 s in
`argmax(0)` over the 4 class probabilities of each subset's volume — the K axis is short and the volume large, a case
torch's CPU reduction handles slowly. Each way runs on the same random probabilities, both memory layouts evaluation
sees (the 2D path returns a permuted view, the 3D path a contiguous map); the labels are asserted equal.
"""
from __future__ import annotations
import argparse, json, sys
from pathlib import Path
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'benchmarks')); sys.path.insert(0, str(ROOT))
from provenance import provenance
from bench_efficiency import timed   # median wall seconds after a warm-up
from dmafnet.core import atomic_write
from dmafnet.inference import label_map

CASES = {'2 mm phantom, 2D path (K×H×W×D view of D×K×H×W)': ('view', (95, 4, 99, 117)),
         '2 mm phantom, 3D path (contiguous K×H×W×D)': ('contiguous', (4, 99, 117, 95)),
         'BraTS-size, 3D path (contiguous K×H×W×D)': ('contiguous', (4, 160, 192, 144))}

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--repeats', type=int, default=7)
    ap.add_argument('--out', default=str(ROOT / 'benchmarks' / 'label_map'))
    ap.add_argument('--note', default='', help='what else ran on the machine, written under the header')
    a = ap.parse_args()
    torch.set_num_threads(a.threads); torch.manual_seed(0)
    rows = []
    for name, (layout, shape) in CASES.items():
        p = torch.rand(shape).softmax(1 if layout == 'view' else 0)
        if layout == 'view': p = p.permute(1, 2, 3, 0)
        assert (label_map(p) == p.argmax(0).to(torch.uint8).numpy()).all()
        t_arg = timed(lambda: p.argmax(0).to(torch.uint8).numpy(), a.repeats)
        t_map = timed(lambda: label_map(p), a.repeats)
        rows.append(dict(case=name, shape='×'.join(map(str, p.shape)), argmax_s=round(t_arg, 4),
                         label_map_s=round(t_map, 4), speedup=round(t_arg / t_map, 2)))
    meta = provenance(threads=a.threads, repeats=a.repeats, note=a.note)
    out = Path(a.out)
    with atomic_write(out.with_suffix('.json')) as f: f.write(json.dumps(dict(meta=meta, rows=rows), indent=1))
    md = ["# Probabilities → labels: `label_map` vs `argmax(0)`\n",
          f"{meta['date']} · commit {meta['commit']} · {meta['machine']} · torch {meta['torch']} · {a.threads} thread(s) · "
          f"median of {a.repeats} calls after a warm-up\n", *([a.note + '\n'] if a.note else []),
          "| probabilities | shape | `argmax(0)` s | `label_map` s | speed-up |", "|---|---|---|---|---|",
          *[f"| {r['case']} | {r['shape']} | {r['argmax_s']} | {r['label_map_s']} | {r['speedup']}× |" for r in rows],
          "\nThe labels are equal in every case (asserted). Evaluation calls this once per case and subset (15 per BraTS "
          "case). Made by `benchmarks/bench_label_map.py`."]
    with atomic_write(out.with_suffix('.md')) as f: f.write('\n'.join(md) + '\n')
    print('\n'.join(md))

if __name__ == '__main__': main()
