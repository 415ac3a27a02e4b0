"""Time the preprocessing of one BraTS-size case (240×240×155, 4 modalities + seg, written as .nii.gz).

Stages timed: read (`read_brats_case`), preprocess (`preprocess_case`), cache write (`save_cached`, compressed
npz), cache read (`load_cached`), inverse + NIfTI write (`write_label_nifti`). Writing the input case is not
timed. Results go to benchmarks/preprocess.md and benchmarks/preprocess.json.

    .venv/bin/python benchmarks/bench_preprocess.py [--repeats 3]
"""
import argparse, datetime, os, platform, tempfile, time
from pathlib import Path
import numpy as np, nibabel as nib, torch
from provenance import git_commit, machine, write_json, write_text
from dmafnet.testing import make_test_case
from dmafnet.data import read_brats_case, preprocess_case, save_cached, load_cached, write_label_nifti

HERE = Path(__file__).resolve().parent

def _machine():
    commit = git_commit()
    return dict(cpu=machine(), cores=os.cpu_count(), python=platform.python_version(), torch=torch.__version__,
                numpy=np.__version__, nibabel=nib.__version__, commit=commit,
                date=datetime.datetime.now().isoformat(timespec='seconds'),
                load_avg=os.getloadavg()[0] if hasattr(os, 'getloadavg') else None)

def main(repeats:int=3, shape=(240, 240, 155)):
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp); t0 = time.perf_counter()
        case_dir = make_test_case(tmp / 'raw' / 'BraTS20_Training_001', shape=shape, seed=0)
        t_write_input = time.perf_counter() - t0
        size_in = sum(p.stat().st_size for p in case_dir.iterdir())
        times = {k: [] for k in ('read', 'preprocess', 'cache_write', 'cache_read', 'inverse_write', 'total',
                                 'cache_write_uncompressed', 'cache_read_uncompressed')}
        for _ in range(repeats):
            t = [time.perf_counter()]
            raw = read_brats_case(case_dir); t.append(time.perf_counter())
            pre = preprocess_case(raw); t.append(time.perf_counter())
            path = save_cached(pre, tmp / 'cache' / 'BraTS20_Training_001.npz'); t.append(time.perf_counter())
            cached = load_cached(path); t.append(time.perf_counter())
            out = write_label_nifti(cached['label'], cached, tmp / 'pred.nii.gz'); t.append(time.perf_counter())
            for k, a, b in zip(list(times)[:5], t[:-1], t[1:]): times[k].append(b - a)
            times['total'].append(t[-1] - t[0])
            t0 = time.perf_counter(); raw_path = save_cached(pre, tmp / 'raw.npz', compress=False)
            t1 = time.perf_counter(); load_cached(raw_path); t2 = time.perf_counter()
            times['cache_write_uncompressed'].append(t1 - t0); times['cache_read_uncompressed'].append(t2 - t1)
        assert np.array_equal(np.asarray(nib.load(str(out)).dataobj), raw['label']), 'round trip failed'
        crop = tuple(int(s) for s in pre['image'].shape[1:])
        res = dict(machine=_machine(), shape=list(shape), crop=list(crop), repeats=repeats,
                   input_nii_gz_mb=round(size_in / 2**20, 1), cache_npz_mb=round(path.stat().st_size / 2**20, 1),
                   cache_npz_uncompressed_mb=round(raw_path.stat().st_size / 2**20, 1),
                   seconds_write_input=round(t_write_input, 2),
                   seconds={k: dict(median=round(float(np.median(v)), 3), min=round(float(np.min(v)), 3)) for k, v in times.items()})
    write_json(HERE / 'preprocess.json', res)
    m = res['machine']
    lines = ['# Preprocessing one BraTS-size case', '',
             f"{m['date']} · commit {m['commit']} · {m['cpu']} (load {m['load_avg']:.1f}) · "
             f"Python {m['python']}, torch {m['torch']}, numpy {m['numpy']}, nibabel {m['nibabel']} · 1 thread", '',
             f"Synthetic case {'×'.join(map(str, shape))}, 4 modalities + seg as .nii.gz ({res['input_nii_gz_mb']} MB); "
             f"crop {'×'.join(map(str, crop))}; cache {res['cache_npz_mb']} MB compressed (the default), "
             f"{res['cache_npz_uncompressed_mb']} MB with `compress=False`. {repeats} repeats.", '',
             '| stage | median s | min s |', '|---|---|---|']
    names = {'read': 'read NIfTI (`read_brats_case`)', 'preprocess': 'crop + z-score (`preprocess_case`)',
             'cache_write': 'write npz (`save_cached`)', 'cache_read': 'read npz (`load_cached`)',
             'inverse_write': 'inverse + write NIfTI (`write_label_nifti`)', 'total': '**total** (the stages above)',
             'cache_write_uncompressed': 'write npz, `compress=False`', 'cache_read_uncompressed': 'read npz, `compress=False`'}
    lines += [f"| {names[k]} | {v['median']:.2f} | {v['min']:.2f} |" for k, v in res['seconds'].items()]
    lines += ['', 'Made by `benchmarks/bench_preprocess.py`. On a shared machine the numbers vary with the load.']
    write_text(HERE / 'preprocess.md', '\n'.join(lines) + '\n')
    print('\n'.join(lines))
    return res

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--repeats', type=int, default=3, help='timed repetitions')
    main(ap.parse_args().repeats)
