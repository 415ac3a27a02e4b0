"Integration tests of evaluation: metrics against hand values and MONAI, encode-once, the two commands."
import json, os, subprocess, sys, warnings
from pathlib import Path
import numpy as np
import pandas as pd
import pytest
import torch
import nibabel as nib

from conftest import ROOT
from dmafnet.metrics import dice, hd95, score_case, BRATS_EMPTY_HD95
from dmafnet.missing import subsets, subset_names

BIN = Path(sys.executable).parent


# --- metrics: hand-worked cases and MONAI -------------------------------------------------------------------------

def _monai(p, r, spacing=None):
    from monai.metrics import compute_dice, compute_hausdorff_distance
    t = lambda x: torch.as_tensor(x, dtype=torch.float32)[None, None]
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return (compute_dice(t(p), t(r), ignore_empty=False).item(),
                compute_hausdorff_distance(t(p), t(r), percentile=95, spacing=spacing).item())

def _box(shape, *slices):
    a = np.zeros(shape, bool); a[slices] = True; return a

def test_identical():
    a = _box((10, 10, 10), slice(2, 6), slice(3, 7), slice(1, 9))
    assert dice(a, a) == 1.0 and hd95(a, a, (1, 1, 2)) == 0.0
    assert _monai(a, a, (1, 1, 2)) == (1.0, 0.0)

def test_disjoint_cubes():
    # two 2-voxel cubes, 6 voxels apart on axis 0 (1.5 mm voxels there): faces 3·1.5 mm apart, corners further
    a = _box((12, 4, 4), slice(1, 3), slice(1, 3), slice(1, 3))
    b = _box((12, 4, 4), slice(7, 9), slice(1, 3), slice(1, 3))
    sp = (1.5, 1.0, 1.0)
    # every voxel is a surface voxel; from a voxel at x=2 the nearest of b is at x=7 (7.5 mm), from x=1 it is 9 mm;
    # half of each cube sits in each plane, so the 95th percentile of [7.5]*4 + [9]*4 is 9 mm, both ways
    assert dice(a, b) == 0.0
    assert hd95(a, b, sp) == pytest.approx(9.0)
    assert _monai(a, b, sp)[1] == pytest.approx(9.0)

def test_partial_overlap_anisotropic():
    # lines along the last axis with 3 mm voxels: prediction 2 voxels, reference 4, same start
    p = _box((3, 3, 8), 1, 1, slice(2, 4)); r = _box((3, 3, 8), 1, 1, slice(2, 6))
    assert dice(p, r) == pytest.approx(2 / 3)
    assert hd95(p, r, (1, 1, 3)) == pytest.approx(3 + 0.75 * 3)                 # pooled [0, 0, 0, 0, 3, 6] (the default)
    assert hd95(p, r, (1, 1, 3), symmetric='max') == pytest.approx(3 + 0.85 * 3)  # MONAI's: directed [0, 0, 3, 6]
    d, h = _monai(p, r, (1, 1, 3))
    assert d == pytest.approx(2 / 3) and h == pytest.approx(5.55, abs=1e-4)
    assert hd95(p, r, (3, 1, 1)) == pytest.approx(1.75)                          # spacing on another axis

def test_empty_conventions():
    z = np.zeros((5, 5, 5), bool); a = _box((5, 5, 5), 2, 2, 2)
    assert (dice(z, z), hd95(z, z)) == (1.0, 0.0)
    assert (dice(a, z), hd95(a, z), hd95(z, a)) == (0.0, BRATS_EMPTY_HD95, BRATS_EMPTY_HD95)
    assert hd95(z, a, convention='passion') == 1.0 and hd95(z, z, convention='passion') == 0.0
    assert _monai(z, a)[0] == 0.0 and np.isnan(_monai(z, a)[1])   # MONAI leaves HD95 undefined there

def test_random_agreement_with_monai():
    from scipy import ndimage
    rng = np.random.default_rng(3)
    for spacing in [(1, 1, 1), (0.7, 1.3, 2.5)]:
        a = ndimage.gaussian_filter(rng.random((24, 20, 18)), 2) > 0.52
        b = ndimage.gaussian_filter(rng.random((24, 20, 18)), 2) > 0.52
        d, h = _monai(a, b, spacing)
        assert dice(a, b) == pytest.approx(d, abs=1e-6) and hd95(a, b, spacing, symmetric='max') == pytest.approx(h, abs=1e-4)

def test_et_postprocessing_is_separate():
    ref = np.zeros((10, 10, 10), np.uint8); ref[2:8, 2:8, 2:8] = 2
    pred = ref.copy(); pred[4, 4, 4] = 3
    s = score_case(pred, ref, spacing=(2, 2, 2), et_min_volume=500)   # 62 voxels at 2 mm
    assert (s['dice_ET'], s['dice_ET_post'], s['hd95_ET_post']) == (0.0, 1.0, 0.0)
    assert s['dice_WT'] == 1.0 and s['dice_TC'] == pytest.approx(0.0)


# --- real network, real phantom -----------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def phantom(tmp_path_factory):
    "Two phantom cases at 4 mm (50×59×48 voxels); the second without its T1 file."
    from dmafnet.phantom import make_phantom
    d = tmp_path_factory.mktemp('phantom')
    dirs = make_phantom(d / 'data', n_cases=2, seed=1, spacing=4.0)
    next(dirs[1].glob('*_t1.nii.gz')).unlink()
    return d / 'data', dirs

@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    "A checkpoint of an untrained tiny 3D DMAF-Net (base width 4, 32³ windows), written the way training writes it."
    from dmafnet.config import preset
    from dmafnet.trainparts import build_model
    from dmafnet.checkpoint import save_checkpoint
    from dmafnet.core import seed_everything
    d = tmp_path_factory.mktemp('run')
    cfg = preset('brats2020', out=str(d), spatial_dims=3, patch_size=(32, 32, 32), base_width=4)
    seed_everything(0)
    model = build_model(cfg)
    return save_checkpoint(dict(model=model.state_dict(), config=cfg.to_dict()), d / 'checkpoints' / 'best.pt')

def _run(*args, timeout=600):
    env = dict(os.environ, OMP_NUM_THREADS='2', PYTHONWARNINGS='ignore')
    r = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    return r

def test_encode_once_matches_full_forward(phantom, checkpoint):
    from dmafnet.trainparts import load_model
    from dmafnet.evaluate import load_eval_case
    from dmafnet.inference import predict_subsets
    model, cfg = load_model(checkpoint)
    image = load_eval_case(phantom[1][0])['image'][:, 1:49, 13:45, 8:40]   # 48×32×32 of the brain: 2 windows
    masks, kw = subsets(4), dict(patch_size=(32, 32, 32), overlap=0.5)
    naive = predict_subsets(model, image, masks, encode_once=False, **kw)
    once = predict_subsets(model, image, masks, subset_batch=1, **kw)      # one subset per decoder call
    for name, a, b in zip(subset_names(4), once, naive):
        assert torch.equal(a, b), name                     # bit for bit: same encoder inputs, same decoder calls
    batched = predict_subsets(model, image, masks, subset_batch=8, **kw)  # 8 subsets per decoder call
    for name, a, b in zip(subset_names(4), batched, naive):
        assert torch.allclose(a, b, atol=1e-5), name       # batched convolutions round differently (~1e-6)
        top2 = b.topk(2, 0).values
        decided = (top2[0] - top2[1]) > 1e-5               # an untrained net has near-ties; elsewhere labels agree
        assert torch.equal(a.argmax(0)[decided], b.argmax(0)[decided]), name

def test_predict_command(phantom, checkpoint, tmp_path):
    case = phantom[1][1]                                   # the case without T1
    out, prob = tmp_path / 'pred.nii.gz', tmp_path / 'prob.nii.gz'
    r = _run(BIN / 'dmafnet-predict', '--checkpoint', checkpoint, '--case', case, '--out', out, '--probabilities', prob)
    assert 'flair+t1ce+t2' in r.stdout
    ref = nib.load(str(next(case.glob('*_flair.nii.gz'))))
    img = nib.load(str(out))
    assert img.shape == ref.shape and np.allclose(img.affine, ref.affine)
    assert set(np.unique(np.asanyarray(img.dataobj)).tolist()) <= {0, 1, 2, 4}
    p = nib.load(str(prob))
    assert p.shape == (*ref.shape, 4) and np.allclose(p.get_fdata().sum(-1), 1, atol=1e-4)

def test_evaluate_command_with_missing_modality(phantom, checkpoint, tmp_path):
    data, dirs = phantom
    out = tmp_path / 'report'
    r = _run(BIN / 'dmafnet-evaluate', '--checkpoint', checkpoint, '--data', data, '--out', out, '--split', 'all',
             '--patch', '32,32,32', '--overlap', '0')
    assert 'mean Dice' in r.stdout
    for f in ('scores.csv', 'cases.csv', 'summary.json', 'table.md', 'table.tex', 'dice_heatmap.png', 'modality_gain.png'):
        assert (out / f).is_file(), f
    scores = pd.read_csv(out / 'scores.csv')
    partial = dirs[1].name
    assert len(scores) == 15 + 7
    assert set(scores[scores.case == partial].subset) == {n for n, m in zip(subset_names(4), subsets(4)) if not m[2]}
    assert {'dice_WT', 'dice_TC', 'dice_ET', 'dice_ET_post', 'hd95_ET_post'} <= set(scores.columns)
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['cases_with_missing_modalities'][partial]['missing'] == ['t1']
    assert len(summary['cases_with_missing_modalities'][partial]['subsets_skipped']) == 8
    assert summary['per_subset']['all']['n_cases'] == 1 and summary['per_subset']['flair']['n_cases'] == 2
    assert summary['checkpoint'] == str(checkpoint) and summary['config']['base_width'] == 4
    assert summary['settings']['patch_size'] == [32, 32, 32] and summary['settings']['overlap'] == 0
    assert set(summary['mean']) >= {'dice_WT', 'hd95_ET'}
    table = (out / 'table.md').read_text()
    assert f'{partial} (no t1)' in table and table.count('\n| ') >= 2 * 16
    assert (out / 'table.tex').read_text().count(r'\midrule') == 4

def test_evaluate_needs_a_split_file(phantom, checkpoint, tmp_path):
    env = dict(os.environ, PYTHONWARNINGS='ignore')
    r = subprocess.run([str(BIN / 'dmafnet-evaluate'), '--checkpoint', str(checkpoint), '--data', str(phantom[0]),
                        '--out', str(tmp_path)], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode != 0 and 'no test.txt' in r.stderr and '--split all' in r.stderr


def _brute_pooled_hd95(a, b, spacing, q=95):
    "HD95 as medpy defines it, written independently: surface voxels by their 6-neighbours, all pairwise distances."
    from scipy.spatial.distance import cdist
    def surface(m):
        pad = np.pad(m, 1); inner = np.ones_like(m)
        for ax in range(m.ndim):
            for step in (-1, 1): inner &= np.roll(pad, step, ax)[tuple(slice(1, -1) for _ in range(m.ndim))]
        return np.argwhere(m & ~inner) * np.asarray(spacing, float)
    sa, sb = surface(a), surface(b)
    d = cdist(sa, sb)
    return float(np.percentile(np.concatenate([d.min(1), d.min(0)]), q))

def test_pooled_hd95_default_matches_an_independent_implementation():
    from scipy import ndimage
    rng = np.random.default_rng(7)
    for shape, spacing in [((22, 20, 16), (1, 1, 1)), ((22, 20, 16), (0.8, 1.4, 3.0)), ((30, 26), (0.5, 2.0))]:
        for _ in range(3):
            a = ndimage.gaussian_filter(rng.random(shape), 2) > 0.52
            b = ndimage.gaussian_filter(rng.random(shape), 2) > 0.5
            assert abs(hd95(a, b, spacing) - _brute_pooled_hd95(a, b, spacing)) < 1e-6

def test_passion_protocol_scores():
    from dmafnet.metrics import score_case
    ref = np.zeros((12, 12, 12), np.uint8); ref[3:9, 3:9, 3:9] = 2; ref[4:8, 4:8, 4:8] = 1
    pred = ref.copy(); pred[0, 0, :3] = 3                                   # 3 stray ET voxels, no ET in the reference
    s = score_case(pred, ref, spacing=(2, 2, 2), protocol='passion')
    assert s['hd95_ET'] == 1.0 and s['dice_ET'] == pytest.approx(0, abs=1e-8)
    assert (s['dice_ET_post'], s['hd95_ET_post']) == (1.0, 0.0)            # 3 < 500 voxels: relabelled
    b = score_case(pred, ref, spacing=(2, 2, 2), et_min_volume=20)          # brats: 20 mm³ = 2 voxels at 2 mm: kept
    assert b['hd95_ET'] == BRATS_EMPTY_HD95 and b['dice_ET_post'] == 0.0
