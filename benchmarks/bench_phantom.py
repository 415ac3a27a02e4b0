"""Seconds per phantom case: generation in memory, and generation + writing the five .nii.gz files.

    .venv/bin/python benchmarks/bench_phantom.py                      # 2 mm (8 cases) and 1 mm (2 cases)
    .venv/bin/python benchmarks/bench_phantom.py --cases 2 --spacings 2   # smoke

The template's one-off load and resampling (once per process and spacing) is timed apart. numpy/scipy run
single-threaded here (OMP/OPENBLAS threads = 1) so numbers compare across loads; results go to
benchmarks/phantom.md and benchmarks/phantom.json.
"""
import os
for v in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS'): os.environ.setdefault(v, '1')
import argparse, datetime, platform, statistics, sys, tempfile, time
from pathlib import Path
import numpy as np, scipy, nibabel as nib

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from provenance import git_commit, machine, write_json, write_text
from dmafnet.phantom import mni_anatomy, phantom_case, write_case

def _machine():
    commit = git_commit()
    try: import torch; tv = torch.__version__
    except ImportError: tv = None
    return dict(cpu=machine(), cores=os.cpu_count(), python=platform.python_version(), torch=tv, numpy=np.__version__,
                scipy=scipy.__version__, nibabel=nib.__version__, commit=commit,
                date=datetime.datetime.now().isoformat(timespec='seconds'),
                load_avg=round(os.getloadavg()[0], 1) if hasattr(os, 'getloadavg') else None)

def bench(spacing:float, n:int, tmp:Path)->dict:
    t0 = time.perf_counter(); A = mni_anatomy(spacing); t_anat = time.perf_counter() - t0
    gen, total = [], []
    for i in range(n):
        t0 = time.perf_counter(); case = phantom_case(i, seed=0, spacing=spacing); t1 = time.perf_counter()
        write_case(case, tmp / f'{spacing:g}mm'); t2 = time.perf_counter()
        gen.append(t1 - t0); total.append(t2 - t0)
    size = sum(f.stat().st_size for f in (tmp / f'{spacing:g}mm' / case['name']).iterdir()) / 1e6
    return dict(spacing=spacing, shape=list(A['shape']), cases=n, template_s=round(t_anat, 2),
                generate_median_s=round(statistics.median(gen), 3), generate_min_s=round(min(gen), 3),
                total_median_s=round(statistics.median(total), 3), total_min_s=round(min(total), 3),
                case_mb=round(size, 2))

def main(cases:int=8, spacings=(2.0, 1.0)):
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for sp in spacings:
            rows.append(bench(sp, cases if sp >= 2 else max(1, min(cases, 2)), Path(tmp)))
            print(rows[-1], flush=True)
    m = _machine()
    res = dict(machine=m, results=rows)
    write_json(HERE / 'phantom.json', res)
    lines = ['# Phantom generation speed', '',
             f"{m['date']} · commit {m['commit']} · {m['cpu']} (load {m['load_avg']}) · "
             f"Python {m['python']}, numpy {m['numpy']}, scipy {m['scipy']}, nibabel {m['nibabel']} · 1 thread", '',
             'Seconds per case of `phantom_case` (generation in memory) and of generation + `write_case` (four int16 '
             'modalities + uint8 seg as .nii.gz). The template load and resampling happen once per process and spacing.',
             '', '| spacing | volume | cases | template (once) s | generate s (median / min) | generate + write s '
             '(median / min) | MB per case |', '|---|---|---|---|---|---|---|']
    for r in rows:
        lines.append(f"| {r['spacing']:g} mm | {'×'.join(map(str, r['shape']))} | {r['cases']} | {r['template_s']} | "
                     f"{r['generate_median_s']} / {r['generate_min_s']} | {r['total_median_s']} / {r['total_min_s']} | "
                     f"{r['case_mb']} |")
    lines += ['', 'Made by `benchmarks/bench_phantom.py`. On a shared machine the numbers vary with the load.', '']
    write_text(HERE / 'phantom.md', '\n'.join(lines))
    print('\n'.join(lines))

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--cases', type=int, default=8, help='cases per spacing (1 mm: at most 2)')
    ap.add_argument('--spacings', default='2,1', help='comma-separated spacings in mm')
    a = ap.parse_args()
    main(a.cases, tuple(float(s) for s in a.spacings.split(',')))
