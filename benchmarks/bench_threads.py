"""Step time of the `study` preset (mean fusion, mr2468) with 1 and 2 torch threads, each alone on the machine.

    .venv/bin/python benchmarks/bench_threads.py      # writes benchmarks/threads.json and threads.md

Why: the evidence study runs many small runs; whether one 2-thread run or two 1-thread runs use a 2-core VM
better is a measurement, not a guess. (Two 2-thread processes at once oversubscribe the cores; that case is
not measured here.)
"""
import os, subprocess, sys
from datetime import datetime, timezone
from pathlib import Path
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'benchmarks')); sys.path.insert(0, str(ROOT))
from provenance import git_commit, machine, write_json, write_text

def one(threads:int, steps:int=20, warmup:int=3)->float:
    "Median seconds per training step (`bench_train.measure`) in a fresh process with `threads` torch threads."
    out = subprocess.run([sys.executable, __file__, '--one', str(threads), str(steps), str(warmup)],
                         capture_output=True, text=True, check=True).stdout
    return float(out.strip().splitlines()[-1])

def _one(threads:int, steps:int, warmup:int):
    "In the child process: the study preset's step time with `threads` threads, printed."
    import tempfile, torch
    from bench_train import measure
    from evidence import study_data, mask_table, SETTINGS, CONFIGS
    from dmafnet.config import preset
    torch.set_num_threads(threads)
    work = ROOT / 'runs' / 'evidence'; cache = study_data(work)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = preset('study', data=str(cache), out=tmp, seed=1, threads=threads, progress=False,
                     mask_csv=mask_table(work, cache, 'mr2468'), **SETTINGS['mr2468'], **CONFIGS['mean fusion'])
        print(measure(cfg, steps, warmup)['step_s'])

def main():
    rows = [dict(threads=t, step_s=round(one(t), 4)) for t in (1, 2)]
    s1, s2 = rows[0]['step_s'], rows[1]['step_s']
    commit = git_commit()
    meta = dict(date=datetime.now(timezone.utc).isoformat(timespec='seconds'), commit=commit, machine=machine(),
                load=os.getloadavg())
    write_json(ROOT / 'benchmarks' / 'threads.json', dict(meta=meta, rows=rows))
    md = ["# Study step time: 1 vs 2 torch threads\n", f"{meta['date']} · commit {commit} · {meta['machine']}\n",
          "`study` preset, mean fusion, mr2468, batch 8, 64×64, base width 4; median of 20 steps after 3, each "
          "thread count alone in a fresh process.\n", "| threads | step s | steps/s per core |", "|---|---|---|",
          *[f"| {r['threads']} | {r['step_s']} | {1 / r['step_s'] / r['threads']:.2f} |" for r in rows],
          f"\nTwo 1-thread runs side by side would give {2 * s2 / s1:.2f}× the throughput of one 2-thread run "
          "(if they do not slow each other; not measured here).\n", "Made by `benchmarks/bench_threads.py`."]
    write_text(ROOT / 'benchmarks' / 'threads.md', '\n'.join(md) + '\n')
    print('\n'.join(md))

if __name__ == '__main__':
    if sys.argv[1:2] == ['--one']: _one(*map(int, sys.argv[2:5]))
    else: main()
