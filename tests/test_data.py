"Integration tests of the data side: NIfTI round trips, bad input, the CLI, RFNet/PASSION files, MyoPS, datasets."
import csv, json, shutil, subprocess, sys
from pathlib import Path
import numpy as np, nibabel as nib, pandas as pd, pytest, torch
from dmafnet.core import BRATS_MODALITIES, seed_everything
from dmafnet.testing import make_test_case
from dmafnet.data import read_brats_case, preprocess_case, restore_label, write_label_nifti, save_cached, load_cached
from dmafnet.preprocess import preprocess_dataset, preprocess_cli
from dmafnet.formats import list_cases
from dmafnet.testing import make_test_myops_case
from dmafnet.formats import find_myops_cases, read_myops_case, preprocess_myops_case, canonical_name
from dmafnet.datasets import VolumeDataset, SliceDataset, read_split, make_split, train_transform, load_case

BIN = Path(sys.executable).parent

def _round_trip(case_dir, tmp_path, **kw):
    "read → preprocess → cache → inverse → NIfTI; return (original seg image, written image)."
    raw = read_brats_case(case_dir)
    cached = load_cached(save_cached(preprocess_case(raw, **kw), tmp_path / 'cache' / f'{raw["name"]}.npz'))
    out = write_label_nifti(cached['label'], cached, tmp_path / 'pred' / f'{raw["name"]}.nii.gz')
    return nib.load(raw['files']['label']), nib.load(str(out))

@pytest.mark.parametrize('suffix,min_size', [('.nii.gz', 128), ('.nii', 16)])
def test_round_trip_synthetic(tmp_path, suffix, min_size):
    c = make_test_case(tmp_path / 'raw' / 'BraTS20_Training_007', shape=(30, 34, 26), seed=3, suffix=suffix)
    orig, back = _round_trip(c, tmp_path, min_size=min_size)
    assert np.array_equal(np.asarray(orig.dataobj), np.asarray(back.dataobj))
    assert np.asarray(back.dataobj).dtype == np.uint8
    np.testing.assert_allclose(back.affine, orig.affine)
    assert back.shape == orig.shape and back.header.get_zooms() == orig.header.get_zooms()

def test_round_trip_through_dataset(tmp_path):
    "A whole-volume dataset sample's label, written back, is the original seg file."
    c = make_test_case(tmp_path / 'raw' / 'case', shape=(30, 34, 26))
    preprocess_dataset(tmp_path / 'raw', tmp_path / 'cache', min_size=16, verbose=False)
    s = VolumeDataset(tmp_path / 'cache')[0]
    out = write_label_nifti(s['label'], load_cached(tmp_path / 'cache' / 'case.npz'), tmp_path / 'p.nii.gz')
    assert np.array_equal(np.asarray(nib.load(str(out)).dataobj), np.asarray(nib.load(str(c / 'case_seg.nii.gz')).dataobj))

def test_round_trip_phantom(tmp_path):
    import dmafnet.phantom as phantom
    d = phantom.make_phantom(tmp_path / 'phantom', n_cases=1, seed=5, spacing=3.0)[0]
    orig, back = _round_trip(d, tmp_path)
    assert np.array_equal(np.asarray(orig.dataobj), np.asarray(back.dataobj))
    assert set(np.unique(np.asarray(orig.dataobj))) <= {0, 1, 2, 4} and np.asarray(orig.dataobj).any()
    np.testing.assert_allclose(back.affine, orig.affine)

# ---- bad input: each raises (or warns) naming the file or case and what was expected

def _case(tmp_path, name='c', **kw):
    c = make_test_case(tmp_path / name, **kw)
    return c, {m: c / f'{name}_{m}.nii.gz' for m in list(BRATS_MODALITIES) + ['seg']}

def _resave(path, data, affine=None):
    nib.save(nib.Nifti1Image(data, nib.load(str(path)).affine if affine is None else affine), str(path))

def test_corrupt_nifti(tmp_path):
    c, f = _case(tmp_path)
    f['t1'].write_bytes(f['t1'].read_bytes()[:300])  # truncated download
    with pytest.raises(ValueError, match=r'c_t1\.nii\.gz: not a readable NIfTI'): read_brats_case(c)
    f['t1'].write_bytes(b'plain text')
    with pytest.raises(ValueError, match=r'c_t1\.nii\.gz: not a readable NIfTI'): read_brats_case(c)

def test_shape_and_affine_mismatch(tmp_path):
    c, f = _case(tmp_path)
    _resave(f['t2'], np.ones((24, 28, 19), np.float32))
    with pytest.raises(ValueError, match=r"c_t2\.nii\.gz: shape \(24, 28, 19\) differs from c_flair"): read_brats_case(c)
    c, f = _case(tmp_path, 'd')
    aff = nib.load(str(f['t1ce'])).affine.copy(); aff[0, 3] += 2
    _resave(f['t1ce'], nib.load(str(f['t1ce'])).get_fdata().astype(np.float32), aff)
    with pytest.raises(ValueError, match=r"d_t1ce\.nii\.gz: affine differs from d_flair"): read_brats_case(c)
    c, f = _case(tmp_path, 'e')
    _resave(f['seg'], np.zeros((24, 28, 21), np.uint8))
    with pytest.raises(ValueError, match=r"e_seg\.nii\.gz: shape"): read_brats_case(c)

@pytest.mark.parametrize('bad', [np.nan, np.inf, -np.inf])
def test_non_finite(tmp_path, bad):
    c, f = _case(tmp_path)
    v = nib.load(str(f['flair'])).get_fdata().astype(np.float32); v[1, 2, 3] = bad; v[4, 5, 6] = bad
    _resave(f['flair'], v)
    with pytest.raises(ValueError, match=r'c_flair\.nii\.gz: 2 NaN/Inf voxels'): read_brats_case(c)

@pytest.mark.parametrize('value', [3, 5, 255])
def test_label_outside_set(tmp_path, value):
    c, f = _case(tmp_path)
    lab = np.asarray(nib.load(str(f['seg'])).dataobj).copy(); lab[0, 0, 0] = value; _resave(f['seg'], lab)
    with pytest.raises(ValueError, match=rf'c_seg\.nii\.gz: label values \[{value}\] outside the expected set \(0, 1, 2, 4\)'):
        read_brats_case(c)

def test_fractional_label(tmp_path):
    c, f = _case(tmp_path)
    lab = np.asarray(nib.load(str(f['seg'])).dataobj).astype(np.float32); lab[0, 0, 0] = 1.5; _resave(f['seg'], lab)
    with pytest.raises(ValueError, match=r'label values \[1.5\]'): read_brats_case(c)

def test_all_zero_modality_warns_and_is_missing(tmp_path):
    c, _ = _case(tmp_path, zero=('t1',))
    with pytest.warns(UserWarning, match=r'c_t1\.nii\.gz: t1 volume is all zero; treated as a missing modality'):
        raw = read_brats_case(c)
    assert raw['availability'].tolist() == [True, True, False, True]
    pre = preprocess_case(raw, min_size=16); assert not pre['image'][2].any()

def test_absent_files_are_missing(tmp_path):
    c, _ = _case(tmp_path, missing=('flair', 't2'))
    raw = read_brats_case(c)
    assert raw['availability'].tolist() == [False, True, True, False] and not raw['image'][[0, 3]].any()

def test_empty_and_label_only_case_folders(tmp_path):
    (tmp_path / 'empty').mkdir()
    with pytest.raises(FileNotFoundError, match=r'empty: empty case folder'): read_brats_case(tmp_path / 'empty')
    c, _ = _case(tmp_path, 'lab', missing=BRATS_MODALITIES)
    with pytest.raises(FileNotFoundError, match=r'lab: no modality file found'): read_brats_case(c)
    with pytest.raises(FileNotFoundError, match=r'nothere: no such case folder'): read_brats_case(tmp_path / 'nothere')

def test_ambiguous_and_unknown_files(tmp_path):
    c, f = _case(tmp_path)
    shutil.copy(f['t2'], c / 'other_t2.nii.gz')
    with pytest.raises(ValueError, match='several files for t2'): read_brats_case(c)
    (c / 'other_t2.nii.gz').unlink(); shutil.copy(f['t2'], c / 'notes.nii.gz')
    with pytest.warns(UserWarning, match=r"ignored NIfTI files .*notes\.nii\.gz"): read_brats_case(c)

def test_case_355_label_name(tmp_path):
    c, f = _case(tmp_path, 'BraTS20_Training_355', suffix='.nii')
    f = c / 'BraTS20_Training_355_seg.nii'; f.rename(c / 'W39_1998.09.19_Segm.nii')
    raw = read_brats_case(c)
    assert raw['label'] is not None and raw['files']['label'].endswith('W39_1998.09.19_Segm.nii')

def test_corrupt_cache(tmp_path):
    (tmp_path / 'x.npz').write_bytes(b'nope')
    with pytest.raises(ValueError, match=r'x\.npz: not a readable dmafnet cache'): load_cached(tmp_path / 'x.npz')

def test_preprocess_dataset_reports_every_case(tmp_path):
    raw = tmp_path / 'MICCAI_BraTS2020_TrainingData'
    make_test_case(raw / 'BraTS20_Training_001'); make_test_case(raw / 'BraTS20_Training_002', missing=('t1',))
    make_test_case(raw / 'BraTS20_Validation_001', labelled=False)
    (raw / 'BraTS20_Training_003').mkdir()
    c = make_test_case(raw / 'BraTS20_Training_004'); (c / 'BraTS20_Training_004_flair.nii.gz').write_bytes(b'x')
    c = make_test_case(raw / 'BraTS20_Training_005', zero=('t2',))
    (raw / 'name_mapping.csv').write_text('a,b\n')
    with pytest.warns(UserWarning, match=r'2 case\(s\) skipped'):
        df = preprocess_dataset(tmp_path, tmp_path / 'cache', min_size=16, verbose=False)  # the folder above
    st = df.set_index('name')
    assert st.status.to_dict() == {'BraTS20_Training_001': 'loaded', 'BraTS20_Training_002': 'loaded',
        'BraTS20_Training_003': 'skipped', 'BraTS20_Training_004': 'skipped', 'BraTS20_Training_005': 'loaded',
        'BraTS20_Validation_001': 'loaded'}
    assert 'empty case folder' in st.reason['BraTS20_Training_003'] and 'not a readable NIfTI' in st.reason['BraTS20_Training_004']
    assert 'all zero' in st.warnings['BraTS20_Training_005'] and not st.has_t2['BraTS20_Training_005']
    assert not st.labelled['BraTS20_Validation_001']
    assert pd.read_csv(tmp_path / 'cache' / 'cases.csv').shape[0] == 6
    split = read_split(tmp_path / 'cache')  # seeded split of the 3 labelled cases only
    assert sorted(sum(split.values(), [])) == ['BraTS20_Training_001', 'BraTS20_Training_002', 'BraTS20_Training_005']
    assert load_cached(tmp_path / 'cache' / 'BraTS20_Validation_001.npz')['label'] is None
    s = VolumeDataset(tmp_path / 'cache', ['BraTS20_Validation_001'])[0]
    assert (s['label'] == -1).all()

def test_cli(tmp_path):
    for i in range(3): make_test_case(tmp_path / 'raw' / f'case{i}', seed=i)
    (tmp_path / 'raw' / 'case9').mkdir()
    r = subprocess.run([str(BIN / 'dmafnet-preprocess'), '--data', str(tmp_path / 'raw'), '--out', str(tmp_path / 'cache'),
                        '--min_size', '16', '--split_seed', '3'], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert '3 of 4 cases ready' in r.stdout and 'case9: ' in r.stdout and 'seeded split (seed 3)' in r.stdout
    assert list_cases(tmp_path / 'cache') == ['case0', 'case1', 'case2']
    assert read_split(tmp_path / 'cache') == make_split(['case0', 'case1', 'case2'], seed=3)
    (tmp_path / 'bad' / 'x').mkdir(parents=True); (tmp_path / 'bad' / 'x' / 'x_t1.nii').write_bytes(b'?')
    with pytest.raises(SystemExit, match='no case could be preprocessed'), pytest.warns(UserWarning, match='skipped'):
        preprocess_cli.__wrapped__(data=str(tmp_path / 'bad'), out=str(tmp_path / 'c2'))
    r = subprocess.run([str(BIN / 'dmafnet-preprocess'), '--help'], capture_output=True, text=True)
    assert r.returncode == 0 and '--data' in r.stdout and '--keep_background' in r.stdout

# ---- RFNet / PASSION files

def _mask_table(path):
    "PASSION's mask CSV read by hand (the `mask` cells look like '[True, False, True, True]')."
    with open(path) as f:
        return {r['data_name']: np.array(json.loads(r['mask'].lower())) for r in csv.DictReader(f)}

def test_passion_lists_and_masks_drive_an_rfnet_folder(passion_ref, tmp_path):
    split = read_split(passion_ref)
    assert [len(split[k]) for k in ('train', 'val', 'test')] == [219, 50, 100]
    assert all(n.startswith(('HG_', 'LG_')) for v in split.values() for n in v)
    assert len({canonical_name(n) for v in split.values() for n in v}) == 369
    names = split['train'][:3]; rng = np.random.default_rng(0)
    for d in ('vol', 'seg'): (tmp_path / d).mkdir()
    for n in names:  # PASSION's loader reads vol/<list name>_vol.npy
        np.save(tmp_path / 'vol' / f'{n}_vol.npy', rng.normal(size=(20, 22, 18, 4)).astype(np.float32))
        np.save(tmp_path / 'seg' / f'{n}_seg.npy', rng.integers(0, 4, (20, 22, 18)).astype(np.uint8))
    masks = _mask_table(passion_ref / 'Brats2020_imb_split_mr2468.csv')
    ds = VolumeDataset(tmp_path, split['train'][:3], availability=masks, patch_size=16)
    for i, n in enumerate(names):
        s = ds[i]
        assert s['name'] == n and s['availability'].tolist() == masks[n].tolist()
        assert not s['image'][~s['availability']].any()
    # a cache named the Kaggle way takes the same lists and masks
    make_test_case(tmp_path / 'raw' / canonical_name(names[0]))
    preprocess_dataset(tmp_path / 'raw', tmp_path / 'cache', min_size=16, verbose=False)
    s = VolumeDataset(tmp_path / 'cache', [names[0]], availability=masks)[0]
    assert s['availability'].tolist() == masks[names[0]].tolist()
    # the data set's own lists are copied as given
    shutil.copy(passion_ref / 'train.txt', tmp_path / 'raw' / 'train.txt')
    with pytest.warns(UserWarning, match=r'218 case\(s\) of the split are not in the cache'):
        preprocess_dataset(tmp_path / 'raw', tmp_path / 'cache2', min_size=16, verbose=False)
    assert read_split(tmp_path / 'cache2')['train'] == split['train']

def test_rfnet_reference_counts(passion_ref):
    masks = _mask_table(passion_ref / 'Brats2020_imb_split_mr2468.csv')
    counts = np.sum(list(masks.values()), 0)
    assert counts.tolist() == [90, 135, 184, 43]  # flair, t1ce, t1, t2

# ---- MyoPS

def test_myops_dataset(tmp_path):
    for i, miss in enumerate([(), ('de',), ('t2', 'c0')]):
        make_test_myops_case(tmp_path / 'myops' / 'train25', f'myops_training_10{i}', seed=i, missing=miss)
    (tmp_path / 'myops' / 'train25' / 'myops_training_100_gd.nii.gz').rename(tmp_path / 'myops' / 'myops_training_100_gd.nii.gz')
    df = preprocess_dataset(tmp_path / 'myops', tmp_path / 'cache', crop_size=64, verbose=False)  # pads 48×40
    assert df.status.tolist() == ['loaded'] * 3 and df.has_de.tolist() == [True, False, True]
    ds = SliceDataset(tmp_path / 'cache', keep='foreground', transform=train_transform(24, spatial_dims=2))
    s = ds[0]
    assert s['image'].shape == (3, 24, 24) and int(s['label'].max()) <= 5
    pre = load_case(tmp_path / 'cache', 'myops_training_100')
    files = find_myops_cases(tmp_path / 'myops')['myops_training_100']
    assert np.array_equal(restore_label(pre['label'], pre), np.asarray(nib.load(str(files['label'])).dataobj))
    with pytest.warns(UserWarning, match='labelled voxels lie outside the crop box'):  # a crop smaller than the heart
        preprocess_myops_case(read_myops_case(files, 'myops_training_100'), crop_size=16)

# ---- datasets and transforms

def test_augmentation_reproducible_and_label_preserving(tmp_path):
    for i in range(2): make_test_case(tmp_path / 'raw' / f'c{i}', shape=(36, 40, 30), seed=i)
    preprocess_dataset(tmp_path / 'raw', tmp_path / 'cache', min_size=16, verbose=False)
    ds = VolumeDataset(tmp_path / 'cache', transform=train_transform(20, 3, max_degrees=10, rotate_p=1.0))
    seed_everything(1); a = ds[0]; seed_everything(1); b = ds[0]
    assert torch.equal(a['image'], b['image']) and torch.equal(a['label'], b['label'])
    assert set(a['label'].unique().tolist()) <= {0, 1, 2, 3}
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=0)
    batch = next(iter(loader))
    assert batch['image'].shape == (2, 4, 20, 20, 20) and batch['availability'].shape == (2, 4)
    assert batch['crop_box'].shape == (2, 3, 2) and batch['affine'].dtype == torch.float64
