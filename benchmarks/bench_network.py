"""Time and peak memory of one DMAF-Net training forward + backward, per fusion (dmaf vs mean vs concat).

    .venv/bin/python benchmarks/bench_network.py                              # 3D 64³ and 80³, batch 1, 2 threads, CPU
    .venv/bin/python benchmarks/bench_network.py --sizes 32 --steps 2         # smoke
    .venv/bin/python benchmarks/bench_network.py --configs 64:dmaf --steps 1  # one configuration
    .venv/bin/python benchmarks/bench_network.py --threads 1                  # a loaded machine: see below

On a shared, loaded CPU, two threads mostly wait for each other at every operation's barrier (measured: the same
step 2–6× slower and its time swinging from one step to the next); one thread then gives steadier numbers.

Writes benchmarks/network.md and benchmarks/network.json (`--out` changes the stem). One step = forward of
`DMAFNet` with all four modalities available + plain cross-entropy on the fused logits, on every deep-supervision
head (label nearest-downsampled) and on every uni-modal logit + backward (no optimiser step). Each configuration
lives in its own worker process, so that its peak RSS (`resource.getrusage(RUSAGE_SELF).ru_maxrss`) is its own;
the workers are stepped round-robin (A, B, C, A, B, C, …) so that drifting load on a shared machine hits them
alike. Reported: median wall time and median process CPU time per step (the latter is less sensitive to other
users of the machine), peak RSS of the process and its growth over the RSS before the first step. Target (issue 4):
DMAF's overhead over `mean` ≤ 1.3× in time and memory.
"""
from __future__ import annotations
import argparse, json, os, platform, resource, shlex, statistics, subprocess, sys, time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = 1.3

def _rss_kb()->int:
    "Current resident set size of this process in KiB."
    with open('/proc/self/statm') as f: return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') // 1024

def worker(size:int, fusion:str, base_width:int, threads:int, spatial_dims:int)->None:
    "Serve 'step' / 'done' commands on stdin, one JSON line per answer on stdout."
    import torch, torch.nn.functional as F
    sys.path.insert(0, str(ROOT))
    from dmafnet.network import DMAFNet
    torch.set_num_threads(threads); torch.manual_seed(0)
    net = DMAFNet(4, 4, spatial_dims, base_width, fusion=fusion).train()
    x = torch.randn(1, 4, *(size,) * spatial_dims)
    y = torch.randint(0, 4, (1, *(size,) * spatial_dims))
    a = torch.ones(1, 4, dtype=torch.bool)
    down = lambda t: F.interpolate(y[:, None].float(), size=t.shape[2:], mode='nearest')[:, 0].long()
    rss0 = _rss_kb()
    for line in sys.stdin:
        if line.strip() == 'step':
            t0, c0 = time.perf_counter(), time.process_time()
            out = net(x, a)
            loss = F.cross_entropy(out.logits, y) + sum(F.cross_entropy(d, down(d)) for d in out.deep_logits)
            loss = loss + sum(F.cross_entropy(out.modality_logits[:, m], y) for m in range(4))
            loss.backward(); net.zero_grad(set_to_none=True)
            print(json.dumps(dict(wall=time.perf_counter() - t0, cpu=time.process_time() - c0)), flush=True)
        else:
            print(json.dumps(dict(maxrss_kb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, rss_before_kb=rss0,
                                  params=sum(p.numel() for p in net.parameters()))), flush=True)
            return

def run(configs:list, steps:int, warmup:int, base_width:int, threads:int, spatial_dims:int)->list:
    "Start one worker per (size, fusion), step them round-robin, collect the results."
    procs = {}
    for size, fusion in configs:
        procs[size, fusion] = subprocess.Popen(
            [sys.executable, __file__, '--worker', '--sizes', str(size), '--fusions', fusion, '--base-width',
             str(base_width), '--threads', str(threads), '--spatial-dims', str(spatial_dims)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
    ask = lambda p, cmd: (p.stdin.write(cmd + '\n'), p.stdin.flush(), json.loads(p.stdout.readline()))[-1]
    times = {k: [] for k in procs}
    for i in range(warmup + steps):
        for k, p in procs.items():
            r = ask(p, 'step')
            if i >= warmup: times[k].append(r)
            print(f"  step {i + 1}/{warmup + steps} {k[0]}³ {k[1]}: {r['wall']:.2f} s", file=sys.stderr, flush=True)
    rows = []
    for (size, fusion), p in procs.items():
        r = ask(p, 'done'); p.wait()
        rows.append(dict(size=size, fusion=fusion, params=r['params'],
                         wall_s=statistics.median(t['wall'] for t in times[size, fusion]),
                         cpu_s=statistics.median(t['cpu'] for t in times[size, fusion]),
                         peak_rss_mb=r['maxrss_kb'] / 1024, rss_growth_mb=(r['maxrss_kb'] - r['rss_before_kb']) / 1024,
                         steps=[t['wall'] for t in times[size, fusion]]))
    return rows

def report(rows:list, meta:dict)->str:
    "The markdown report."
    L = ["# Network: DMAF fusion vs the baselines", "",
         f"One training forward + backward of `DMAFNet` (base width {meta['base_width']}, {meta['spatial_dims']}D, "
         "batch 1, all four modalities, plain cross-entropy on the fused, deep-supervision and uni-modal logits), "
         f"CPU, threads: {meta['threads']}. Median of {meta['steps']} steps after {meta['warmup']} warm-up step(s); "
         "configurations in separate processes, stepped round-robin.",
         f"Generated by `{meta['command']}`.", *(["", f"Note: {meta['note']}"] if meta.get('note') else []), "",
         "| size | fusion | parameters | step wall (s) | step CPU (s) | peak RSS (MB) | RSS growth (MB) |",
         "|---|---|---|---|---|---|---|"]
    for r in rows:
        L.append(f"| {r['size']}³ | `{r['fusion']}` | {r['params']:,} | {r['wall_s']:.2f} | {r['cpu_s']:.2f} | "
                 f"{r['peak_rss_mb']:.0f} | {r['rss_growth_mb']:.0f} |")
    L += ["", "**DMAF over mean** (target ≤ 1.3×):", ""]
    by = {(r['size'], r['fusion']): r for r in rows}
    for size in sorted({r['size'] for r in rows}):
        if (size, 'dmaf') in by and (size, 'mean') in by:
            d, m = by[size, 'dmaf'], by[size, 'mean']
            ratios = dict(wall=d['wall_s'] / m['wall_s'], cpu=d['cpu_s'] / m['cpu_s'],
                          rss=d['peak_rss_mb'] / m['peak_rss_mb'])
            ok = 'within' if max(ratios['cpu'], ratios['rss']) <= TARGET else 'OVER'
            L.append(f"- {size}³: time {ratios['wall']:.2f}× (CPU time {ratios['cpu']:.2f}×), peak RSS "
                     f"{ratios['rss']:.2f}× — {ok} the target")
    L += ["", "| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in meta.items() if k not in ('command', 'note')]
    return '\n'.join(L) + '\n'

def _without_note(argv:list)->list:
    "The arguments without `--note TEXT` (the note is printed on its own line)."
    out, skip = [], False
    for a in argv:
        if skip: skip = False; continue
        if a == '--note': skip = True; continue
        if not a.startswith('--note='): out.append(a)
    return out

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--sizes', type=int, nargs='+', default=[64, 80])
    ap.add_argument('--fusions', nargs='+', default=['dmaf', 'mean', 'concat'])
    ap.add_argument('--configs', nargs='*', default=None, help='SIZE:FUSION pairs instead of sizes × fusions')
    ap.add_argument('--steps', type=int, default=3)
    ap.add_argument('--warmup', type=int, default=1)
    ap.add_argument('--base-width', type=int, default=8)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--spatial-dims', type=int, default=3)
    ap.add_argument('--note', default='', help='a line of context written under the title (e.g. machine load)')
    ap.add_argument('--out', default=str(ROOT / 'benchmarks' / 'network'), help='output stem (.md and .json)')
    ap.add_argument('--worker', action='store_true', help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args.sizes[0], args.fusions[0], args.base_width, args.threads, args.spatial_dims)
    configs = ([(int(c.split(':')[0]), c.split(':')[1]) for c in args.configs] if args.configs
               else [(s, f) for s in args.sizes for f in args.fusions])
    import torch
    sys.path.insert(0, str(ROOT / 'benchmarks'))
    from provenance import git_commit, machine, write_json, write_text
    meta = dict(date=datetime.now(timezone.utc).isoformat(timespec='seconds'),
                commit=git_commit(('dmafnet', 'benchmarks/bench_network.py')), machine=machine(),
                python=platform.python_version(), torch=torch.__version__, threads=args.threads, device='cpu',
                load_average_at_start=' '.join(f'{x:.2f}' for x in os.getloadavg()),
                note=args.note, base_width=args.base_width, spatial_dims=args.spatial_dims, steps=args.steps, warmup=args.warmup,
                command=shlex.join(['python', 'benchmarks/bench_network.py', *_without_note(sys.argv[1:] if argv is None else argv)]))
    rows = run(configs, args.steps, args.warmup, args.base_width, args.threads, args.spatial_dims)
    meta['load_average_at_end'] = ' '.join(f'{x:.2f}' for x in os.getloadavg())
    out = Path(args.out)
    write_json(out.with_suffix('.json'), dict(meta=meta, rows=rows))
    write_text(out.with_suffix('.md'), report(rows, meta))
    print(out.with_suffix('.md').read_text())

if __name__ == '__main__': main()
