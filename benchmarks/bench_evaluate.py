"""Evaluation speed: a 15-subset evaluation of one case with each window encoded once vs a full forward per subset,
and seconds per BraTS-size case.

    .venv/bin/python benchmarks/bench_evaluate.py            # phantom 2 mm, 3D base 8 with 80³ windows and the 2D
                                                             # demo model; BraTS-size 160×192×144 with 80³ windows
                                                             # (about 20 min on 2 quiet cores)
    .venv/bin/python benchmarks/bench_evaluate.py --smoke    # a small version (4 mm, base 4, 32³), 2–3 min

Part 1 runs `dmafnet.inference.predict_subsets` on one phantom case for all 15 subsets in four ways — a full forward per
subset (`model(x, a)`, the uni-modal decoders included, as training's forward does), a forward per subset without the
uni-modal decoders, and encode-once with 1 subset per decoder call and with the default number (`AUTO_DECODE_VOXELS`) — asserts that they give the same
probabilities (bit for bit for one subset per call, to 1e-5 otherwise) and reports times and speed-ups.
Part 2 times encode-once inference of a BraTS-size random volume (4×160×192×144, 80³ windows, 50 % overlap, base
width 8; `--brats-windows K` times K of the windows and scales to all of them) and the scoring of 15 subsets ×
(WT, TC, ET, ET_post) on a synthetic tumour of that size. Results go to benchmarks/evaluate.md and evaluate.json.
"""
import os
import argparse, datetime, platform, resource, statistics, sys, tempfile, time, warnings
from pathlib import Path
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import torch
from monai.inferers import sliding_window_inference
from provenance import git_commit, write_json, write_text
from dmafnet.network import DMAFNet
from dmafnet.missing import subsets
from dmafnet.inference import predict_subsets, AUTO_DECODE_VOXELS
from dmafnet.metrics import score_case

def _machine(threads):
    cpu = next((l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name')),
               platform.processor()) if Path('/proc/cpuinfo').exists() else platform.processor()
    commit = git_commit()
    import monai
    return dict(cpu=cpu, cores=os.cpu_count(), threads=threads, python=platform.python_version(), torch=torch.__version__,
                monai=monai.__version__, commit=commit, date=datetime.datetime.now().isoformat(timespec='seconds'),
                load_avg=round(os.getloadavg()[0], 1) if hasattr(os, 'getloadavg') else None)

def _timed(fn, repeats):
    "Output of the last run, wall-clock seconds and process CPU seconds of each run."
    wall, cpu, out = [], [], None
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time(); out = fn()
        wall.append(time.perf_counter() - t0); cpu.append(time.process_time() - c0)
    return out, wall, cpu

@torch.no_grad()
def _naive_full(model, image, masks, patch, overlap):
    "A full forward per subset (uni-modal decoders included), stitched by MONAI: what one writes without encode/fuse_decode."
    sd = model.spatial_dims
    x = torch.as_tensor(image)
    x = x.permute(3, 0, 1, 2) if (sd == 2 and x.ndim == 4) else x[None]
    A = torch.tensor(masks)
    pred = lambda w: tuple(model(w, a[None].expand(w.shape[0], -1)).logits.softmax(1) for a in A)
    out = sliding_window_inference(x, patch, 16 if sd == 2 else 1, pred, overlap=overlap)
    return [o.permute(1, 2, 3, 0) if sd == 2 and x.ndim == 4 else o[0] for o in out]

def phantom_image(spacing):
    from dmafnet.phantom import make_phantom
    from dmafnet.data import read_brats_case, preprocess_case
    with tempfile.TemporaryDirectory() as d:
        case = preprocess_case(read_brats_case(make_phantom(d, n_cases=1, seed=0, spacing=spacing)[0]))
    return case['image']

def part1(image, dims, base_width, patch, overlap, repeats):
    torch.manual_seed(0)
    model = DMAFNet(base_width=base_width, spatial_dims=dims).eval()
    masks = subsets(4)
    kw = dict(patch_size=patch, overlap=overlap, mask_background=False)  # same raw maps as the plain forward
    b = 16 if dims == 2 else 1                                           # windows per call (predict_subsets' default)
    auto = max(1, AUTO_DECODE_VOXELS // (b * int(np.prod(patch))))
    ways = {'full forward per subset (with uni-modal decoders)': lambda: _naive_full(model, image, masks, patch, overlap),
            'forward per subset (fused output only)': lambda: predict_subsets(model, image, masks, encode_once=False, **kw),
            'encode once, 1 subset per decoder call': lambda: predict_subsets(model, image, masks, subset_batch=1, **kw),
            f'encode once, default: {auto} subset(s) per decoder call': lambda: predict_subsets(model, image, masks, **kw)}
    outs, wall, cpu = {}, {k: [] for k in ways}, {k: [] for k in ways}
    for rnd in range(repeats + 1):                    # round 0 warms up; the ways alternate so load hits all alike
        for name, fn in ways.items():
            o, w, c = _timed(fn, 1)
            if rnd: wall[name] += w; cpu[name] += c
            outs[name] = o
    rows = [dict(way=k, median_s=round(statistics.median(wall[k]), 2), min_s=round(min(wall[k]), 2),
                 cpu_s=round(min(cpu[k]), 2)) for k in ways]
    for r in rows: print(r, flush=True)
    ref = outs['forward per subset (fused output only)']
    names = list(ways)
    full, one, default = outs[names[0]], outs[names[2]], outs[names[3]]
    same = dict(bitwise_1=all(torch.equal(a, b) for a, b in zip(one, ref)),
                max_diff_default=max(float((a - b).abs().max()) for a, b in zip(default, ref)),
                max_diff_full=max(float((a - b).abs().max()) for a, b in zip(full, ref)))
    assert same['bitwise_1'], 'encode-once (1 subset per call) differs from the per-subset forward'
    assert same['max_diff_default'] < 1e-5 and same['max_diff_full'] < 1e-5, same
    for key in ('min_s', 'cpu_s'):
        base = {r['way']: r[key] for r in rows}
        for r in rows:
            r[f'speedup_vs_full_{key[:-2]}'] = round(base[names[0]] / r[key], 2)
            r[f'speedup_vs_fused_{key[:-2]}'] = round(base[names[1]] / r[key], 2)
    return dict(dims=dims, base_width=base_width, image=list(image.shape), patch=list(patch), overlap=overlap, auto_subset_batch=auto,
                repeats=repeats, params_m=round(sum(p.numel() for p in model.parameters()) / 1e6, 2), rows=rows, same=same)

def part2(shape, base_width, patch, overlap, windows):
    torch.manual_seed(0)
    model = DMAFNet(base_width=base_width).eval()
    masks = subsets(4)
    step = [max(int(p * (1 - overlap)), 1) for p in patch]            # MONAI's scan interval
    n_windows = int(np.prod([1 if s <= p else -(-(s - p) // st) + 1 for s, p, st in zip(shape[1:], patch, step)]))
    if windows and windows < n_windows:                                   # time `windows` windows, scale up
        x = torch.randn(4, *patch)
        predict_subsets(model, x, masks, patch_size=patch)                # warm-up
        _, t, c = _timed(lambda: predict_subsets(model, x, masks, patch_size=patch), windows)
        infer_s, cpu_s = min(t) * n_windows, min(c) * n_windows
        how = f'{windows} window(s) timed, × {n_windows}'
    else:
        x = torch.randn(*shape)
        _, t, c = _timed(lambda: predict_subsets(model, x, masks, patch_size=patch, overlap=overlap), 1)
        infer_s, cpu_s, how = t[0], c[0], f'all {n_windows} windows'
    # scoring: a spherical tumour (edema ⊃ core ⊃ enhancing rim) and 15 slightly shifted predictions
    g = np.stack(np.meshgrid(*[np.arange(n) for n in shape[1:]], indexing='ij')).astype(np.float32)
    def tumour(c):
        r = np.sqrt(((g - np.array(c, np.float32)[:, None, None, None]) ** 2).sum(0))
        return np.select([r < 10, r < 16, r < 30], [1, 3, 2], 0).astype(np.uint8)
    ref = tumour((80, 96, 72))
    preds = [tumour((80 + i % 3, 96 + i % 5 - 2, 72 + i % 2)) for i in range(15)]
    _, t, _ = _timed(lambda: [score_case(p, ref, spacing=(1., 1., 1.)) for p in preds], 1)
    return dict(shape=list(shape), base_width=base_width, patch=list(patch), overlap=overlap, windows=n_windows,
                timed=how, inference_s=round(infer_s, 1), inference_cpu_s=round(cpu_s, 1), scoring_s=round(t[0], 2),
                per_case_s=round(infer_s + t[0], 1))

def main(a):
    torch.set_num_threads(a.threads)
    warnings.filterwarnings('ignore')
    res = dict(machine=_machine(a.threads), part1=[], part2=None)
    image = phantom_image(a.spacing)
    for dims in a.dims:
        patch = a.patch3 if dims == 3 else a.patch2
        res['part1'].append(part1(image, dims, a.base_width, patch, a.overlap, a.repeats))
    res['part2'] = part2((4, *a.brats_shape), a.brats_base_width, a.brats_patch, 0.5, a.brats_windows)
    print(res['part2'], flush=True)
    res['peak_rss_gb'] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2)
    m = res['machine']
    out = HERE / 'evaluate'
    write_json(out.with_suffix('.json'), res)
    L = ['# Evaluation speed', '',
         f"{m['date']} · commit {m['commit']} · {m['cpu']} ({m['cores']} cores, load {m['load_avg']}) · {m['threads']} torch "
         f"threads · torch {m['torch']}, MONAI {m['monai']} · peak RSS {res['peak_rss_gb']} GB"
         + (' · **smoke run (small settings)**' if a.smoke else ''), '',
         '## 15 subsets of one phantom case: encode once vs a forward per subset', '',
         f"One phantom case at {a.spacing:g} mm (preprocessed, {'×'.join(map(str, image.shape[1:]))} voxels), untrained "
         f"`DMAFNet`, sliding windows with {a.overlap:.0%} overlap, softmax stitched by MONAI. {a.repeats} timed round(s) after "
         "a warm-up round, the ways alternating within each round; speed-ups from the minimum times; CPU s = the process's "
         "CPU time. "
         "All four ways give the same probabilities (asserted: bit for bit with one subset per decoder call, "
         "within 1e-5 otherwise).", '']
    for p in res['part1']:
        L += [f"**{p['dims']}D**, base width {p['base_width']} ({p['params_m']} M parameters), window "
              f"{'×'.join(map(str, p['patch']))}{' (axial slices as the batch)' if p['dims'] == 2 else ''}:", '',
              '| way | wall s (min / median) | CPU s (min) | speed-up vs full forward (wall / CPU) | vs fused-only forward (wall / CPU) |',
              '|---|---|---|---|---|']
        L += [f"| {r['way']} | {r['min_s']} / {r['median_s']} | {r['cpu_s']} | {r['speedup_vs_full_min']}× / "
              f"{r['speedup_vs_full_cpu']}× | {r['speedup_vs_fused_min']}× / {r['speedup_vs_fused_cpu']}× |" for r in p['rows']]
        L += ['', f"Max |difference| to the fused-only forward: default {p['same']['max_diff_default']:.1e}, full forward "
              f"{p['same']['max_diff_full']:.1e}; 1 subset per call: bit for bit.", '']
    b = res['part2']
    L += ['## A BraTS-size case', '',
          f"Random input {'×'.join(map(str, b['shape']))}, base width {b['base_width']}, window "
          f"{'×'.join(map(str, b['patch']))}, {b['overlap']:.0%} overlap ({b['windows']} windows), 15 subsets encoded once "
          f"({b['timed']}); scoring = Dice and HD95 of WT, TC, ET, ET_post for 15 predictions of a synthetic tumour.", '',
          '| inference s (wall) | inference CPU s | scoring s | seconds per case |', '|---|---|---|---|',
          f"| {b['inference_s']} | {b['inference_cpu_s']} | {b['scoring_s']} | {b['per_case_s']} |", '',
          'Made by `benchmarks/bench_evaluate.py`' + (' --smoke' if a.smoke else '') +
          '. The CPU is shared: numbers vary with the load (see the load average above).', '']
    write_text(out.with_suffix('.md'), '\n'.join(L))
    print('\n'.join(L))

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--smoke', action='store_true', help='small settings: 4 mm, base width 4, 32³ / 64×64 windows, 1 BraTS window')
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--repeats', type=int, default=None)
    a = ap.parse_args()
    if a.smoke:
        a.spacing, a.dims, a.base_width, a.patch3, a.patch2, a.overlap = 4.0, (3, 2), 4, (32, 32, 32), (64, 64), 0.25
        a.brats_shape, a.brats_base_width, a.brats_patch, a.brats_windows = (160, 192, 144), 8, (80, 80, 80), 1
        a.repeats = a.repeats or 2
    else:
        a.spacing, a.dims, a.base_width, a.patch3, a.patch2, a.overlap = 2.0, (3, 2), 8, (80, 80, 80), (96, 112), 0.5
        a.brats_shape, a.brats_base_width, a.brats_patch, a.brats_windows = (160, 192, 144), 8, (80, 80, 80), 0
        a.repeats = a.repeats or 1
    main(a)
