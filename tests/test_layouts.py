"""Each data layout beyond BraTS2020 (issue 16): detected, read into our channel order and classes, preprocessed into a
cache training reads, written back with the release's own label values; and its bad input named, never dropped."""
import json, os, subprocess, sys
from pathlib import Path
import numpy as np, nibabel as nib, pytest
from dmafnet.core import BRATS_MODALITIES
from dmafnet.data import read_brats_case, encode_labels, load_cached, write_label_nifti
from dmafnet.formats import detect_layout, list_cases, case_loader, find_msd_cases, read_msd_case, find_nnunet_cases, read_nnunet_case
from dmafnet.core import BRATS_REGIONS
from dmafnet.metrics import region_mask
from dmafnet.preprocess import preprocess_dataset, preprocess_cli
from dmafnet.datasets import VolumeDataset
from dmafnet.testing import (make_test_case, make_test_brats2023_case, make_test_msd, make_test_nnunet, make_test_myops_case,
                             synthetic_volumes)

BIN = Path(sys.executable).parent

def _labels(path): return np.asarray(nib.load(str(path)).dataobj)

def _reference(tmp_path, seed=0, shape=(24, 28, 20)):
    "The same synthetic case in the BraTS 2020 layout: image and classes every other layout must reproduce."
    raw = read_brats_case(make_test_case(tmp_path / 'ref' / f'BraTS20_Training_{seed:03d}', shape=shape, seed=seed))
    return raw['image'], encode_labels(raw['label'])

def _cache_round_trip(data, tmp_path, label_files:dict, layout:str):
    "Preprocess `data`, read the cache as training does, write each case's label back; return the table."
    assert detect_layout(data) == layout
    df = preprocess_dataset(data, tmp_path / 'cache', min_size=16, verbose=False)
    assert (df.status == 'loaded').all(), df.reason.tolist()
    ds = VolumeDataset(tmp_path / 'cache')
    s = ds[0]
    assert s['image'].shape[0] == 4 and s['availability'].shape == (4,) and int(s['label'].max()) <= 3
    for name, f in label_files.items():  # the ground truth through the cache and back: the release's own file
        cached = load_cached(tmp_path / 'cache' / f'{name}.npz')
        back = nib.load(str(write_label_nifti(cached['label'], cached, tmp_path / 'pred' / f'{name}.nii.gz')))
        ref = nib.load(str(f))
        assert np.array_equal(np.asarray(back.dataobj), np.asarray(ref.dataobj)) and back.shape == ref.shape
        np.testing.assert_allclose(back.affine, ref.affine)
    return df

# ---- BraTS 2021: the 2020 layout and labels

def test_brats2021(tmp_path):
    d = tmp_path / 'BraTS2021_Training_Data'
    for i in range(2): make_test_case(d / f'BraTS2021_{i:05d}', seed=i)
    assert detect_layout(d) == 'brats' and list_cases(d) == ['BraTS2021_00000', 'BraTS2021_00001']
    _cache_round_trip(d, tmp_path, {'BraTS2021_00001': d / 'BraTS2021_00001' / 'BraTS2021_00001_seg.nii.gz'}, 'brats')
    assert load_cached(tmp_path / 'cache' / 'BraTS2021_00000.npz')['label_values'].tolist() == [0, 1, 2, 4]

# ---- BraTS 2023+: renamed modalities, labels 1 NETC, 2 SNFH, 3 ET

def test_brats2023_channels_classes_and_raw_values(tmp_path):
    d = tmp_path / 'ASNR-MICCAI-BraTS2023-GLI-Challenge-TrainingData'
    c = make_test_brats2023_case(d / 'BraTS-GLI-00000-000', seed=0)
    make_test_brats2023_case(d / 'BraTS-GLI-00001-000', seed=1, missing=('t1ce',))
    image, classes = _reference(tmp_path)
    raw = case_loader('brats2023', d, min_size=128)('BraTS-GLI-00000-000')  # whole volume (128 > the shape)
    assert np.array_equal(raw['label'], classes) and raw['modalities'] == BRATS_MODALITIES
    for region, cls in BRATS_REGIONS.items():  # WT/TC/ET are the same voxels as 2020's
        assert np.array_equal(region_mask(raw['label'], cls), region_mask(classes, cls)), region
    assert set(np.unique(_labels(c / 'BraTS-GLI-00000-000-seg.nii.gz'))) == {0, 1, 2, 3}
    df = _cache_round_trip(d, tmp_path, {'BraTS-GLI-00000-000': c / 'BraTS-GLI-00000-000-seg.nii.gz'}, 'brats2023')
    assert df.set_index('name').has_t1ce.to_dict() == {'BraTS-GLI-00000-000': True, 'BraTS-GLI-00001-000': False}
    assert load_cached(tmp_path / 'cache' / 'BraTS-GLI-00001-000.npz')['label_values'].tolist() == [0, 1, 2, 3]

def test_brats2023_bad_input(tmp_path):
    d = tmp_path / 'gli'
    c = make_test_brats2023_case(d / 'BraTS-GLI-00000-000')
    seg = c / 'BraTS-GLI-00000-000-seg.nii.gz'; lab = _labels(seg).copy(); lab[0, 0, 0] = 4  # 2020's ET value
    nib.save(nib.Nifti1Image(lab, nib.load(str(seg)).affine), str(seg))
    with pytest.raises(ValueError, match=r'BraTS-GLI-00000-000-seg\.nii\.gz: label values \[4\] outside the expected set \(0, 1, 2, 3\)'):
        case_loader('brats2023', d)('BraTS-GLI-00000-000')
    t1n = c / 'BraTS-GLI-00000-000-t1n.nii.gz'; nib.save(nib.Nifti1Image(np.ones((5, 5, 5), np.float32), np.eye(4)), str(t1n))
    with pytest.raises(ValueError, match=r't1n\.nii\.gz: shape \(5, 5, 5\) differs from BraTS-GLI-00000-000-t2f\.nii\.gz'):
        case_loader('brats2023', d)('BraTS-GLI-00000-000')

# ---- MSD Task01: one 4D file per case, channels FLAIR, T1w, T1gd, T2w, labels 1 edema, 2 NET, 3 ET

def test_msd_task01(tmp_path):
    d = make_test_msd(tmp_path / 'Task01_BrainTumour', n_cases=2)
    (d / 'imagesTr' / '._BRATS_001.nii.gz').write_bytes(b'\0' * 4096)  # macOS companion files in the archive
    image, classes = _reference(tmp_path)
    assert list_cases(d) == ['BRATS_001', 'BRATS_002', 'BRATS_003']
    raw = read_msd_case(find_msd_cases(d)['BRATS_001'], 'BRATS_001')
    assert np.array_equal(raw['image'], image) and np.array_equal(encode_labels(raw['label'], raw['label_values']), classes)
    ml = _labels(d / 'labelsTr' / 'BRATS_001.nii.gz')
    assert ml[classes == 2].min() == 1 and ml[classes == 1].min() == 2 and ml[classes == 3].min() == 3  # the MSD's values
    df = _cache_round_trip(d, tmp_path, {'BRATS_002': d / 'labelsTr' / 'BRATS_002.nii.gz'}, 'msd')
    assert df.set_index('name').labelled.to_dict() == {'BRATS_001': True, 'BRATS_002': True, 'BRATS_003': False}
    assert load_cached(tmp_path / 'cache' / 'BRATS_001.npz')['label_values'].tolist() == [0, 2, 1, 3]

def test_msd_bad_input(tmp_path):
    d = make_test_msd(tmp_path / 'Task01_BrainTumour', n_cases=2)
    f = d / 'imagesTr' / 'BRATS_002.nii.gz'; v = nib.load(str(f))
    nib.save(nib.Nifti1Image(np.asarray(v.dataobj)[..., :3], v.affine), str(f))  # a channel short
    with pytest.warns(UserWarning, match='1 case'):
        df = preprocess_dataset(d, tmp_path / 'cache', min_size=16, verbose=False)  # the others go on; this one is named
    reason = df.set_index('name').reason['BRATS_002']
    assert 'BRATS_002.nii.gz: expected a 4D volume X×Y×Z×4 (channels FLAIR, T1w, t1gd, T2w), got shape (24, 28, 20, 3)' in reason
    f = d / 'labelsTr' / 'BRATS_001.nii.gz'; lab = _labels(f).copy(); lab[0, 0, 0] = 7
    nib.save(nib.Nifti1Image(lab, nib.load(str(f)).affine), str(f))
    with pytest.raises(ValueError, match=r'labelsTr/BRATS_001\.nii\.gz: label values \[7\] outside the expected set \(0, 2, 1, 3\)'):
        read_msd_case(find_msd_cases(d)['BRATS_001'], 'BRATS_001')
    nib.save(nib.Nifti1Image(lab[1:], nib.load(str(f)).affine), str(f))
    with pytest.raises(ValueError, match=r'BRATS_001\.nii\.gz: shape \(23, 28, 20\) differs from BRATS_001\.nii\.gz'):
        read_msd_case(find_msd_cases(d)['BRATS_001'], 'BRATS_001')
    meta = json.loads((d / 'dataset.json').read_text()); meta['numTraining'] = 5; (d / 'dataset.json').write_text(json.dumps(meta))
    with pytest.warns(UserWarning, match='numTraining is 5 but imagesTr holds 2 cases'): find_msd_cases(d)
    (d / 'dataset.json').unlink()
    with pytest.raises(FileNotFoundError, match=r'Task01_BrainTumour/dataset\.json: missing'): detect_layout(d)
    with pytest.raises(FileNotFoundError, match=r'dataset\.json: missing'): list_cases(d, 'msd')
    with pytest.raises(SystemExit, match=r'dmafnet-preprocess: .*dataset\.json: missing'):
        preprocess_cli.__wrapped__(data=str(d), out=str(tmp_path / 'cache2'))

# ---- nnU-Net v2 raw: one file per channel, channel_names and labels in dataset.json

def test_nnunet_brats_like(tmp_path):
    d = make_test_nnunet(tmp_path / 'Dataset137_BraTS2021', n_cases=3, missing={1: ('t2',), 2: ('flair', 't1ce')})
    image, classes = _reference(tmp_path)
    cases = find_nnunet_cases(d); assert sorted(cases) == ['BraTS_001', 'BraTS_002', 'BraTS_003']
    raw = read_nnunet_case(cases['BraTS_001'], 'BraTS_001')
    assert np.array_equal(raw['image'], image) and raw['label_values'] == (0, 2, 1, 3)
    assert np.array_equal(encode_labels(raw['label'], raw['label_values']), classes)
    assert read_nnunet_case(cases['BraTS_003'], 'BraTS_003')['availability'].tolist() == [False, False, True, True]
    df = _cache_round_trip(d, tmp_path, {'BraTS_002': d / 'labelsTr' / 'BraTS_002.nii.gz'}, 'nnunet')
    assert df.set_index('name').has_t2.to_dict() == {'BraTS_001': True, 'BraTS_002': False, 'BraTS_003': True}

def test_nnunet_region_based_labels(tmp_path):
    d = make_test_nnunet(tmp_path / 'Dataset138_BraTSRegions', n_cases=1, region_based=True, channel_names=('t2f', 'T1C', 't1n', 'T2W'))
    image, classes = _reference(tmp_path)
    raw = read_nnunet_case(find_nnunet_cases(d)['BraTS_001'], 'BraTS_001')
    assert np.array_equal(raw['image'], image) and np.array_equal(encode_labels(raw['label'], raw['label_values']), classes)

def test_nnunet_generic(tmp_path):
    "Channels and labels that are not BraTS's: read under the data set's own names and values."
    d = make_test_nnunet(tmp_path / 'Dataset201_Other', n_cases=1)
    (d / 'dataset.json').write_text(json.dumps(dict(channel_names={'0': 'CT', '1': 'PET', '2': 'MR', '3': 'DWI'},
                                                    labels={'background': 0, 'a': 1, 'b': 2, 'c': 3}, numTraining=1, file_ending='.nii.gz')))
    with pytest.warns(UserWarning, match=r"are not all BraTS's; read as the data set names them \(modalities \('CT', 'PET', 'MR', 'DWI'\), raw label values \(0, 1, 2, 3\)\)"):
        raw = read_nnunet_case(find_nnunet_cases(d)['BraTS_001'], 'BraTS_001')
    assert raw['modalities'] == ('CT', 'PET', 'MR', 'DWI') and raw['label_values'] == (0, 1, 2, 3)
    with pytest.warns(UserWarning, match="not all BraTS's"): df = preprocess_dataset(d, tmp_path / 'cache', min_size=16, verbose=False)
    assert df.status.tolist() == ['loaded'] and df.has_PET.tolist() == [True]
    assert tuple(load_cached(tmp_path / 'cache' / 'BraTS_001.npz')['modalities']) == ('CT', 'PET', 'MR', 'DWI')
    from dmafnet.config import preset
    from dmafnet.traindata import prepare_data
    (tmp_path / 'split').mkdir(); (tmp_path / 'split' / 'train.txt').write_text('BraTS_001\n')
    cfg = preset('phantom', data=str(tmp_path / 'cache'), out=str(tmp_path / 'run'), split=str(tmp_path / 'split'))
    with pytest.raises(ValueError, match=r"config field 'dataset': .* holds modalities \('CT', 'PET', 'MR', 'DWI'\); 'brats' reads"):
        prepare_data(cfg)  # not trained as BraTS by mistake
    meta = json.loads((d / 'dataset.json').read_text())  # BraTS channels, other labels (3 classes): refused too
    (d / 'dataset.json').write_text(json.dumps(dict(meta, channel_names={'0': 'T1', '1': 'T1ce', '2': 'T2', '3': 'Flair'},
                                                    labels={'background': 0, 'lesion': 1, 'scar': 2})))
    for f in (d / 'labelsTr').iterdir(): lab = _labels(f); nib.save(nib.Nifti1Image(np.minimum(lab, 2), nib.load(str(f)).affine), str(f))
    with pytest.warns(UserWarning, match="not all BraTS's"):
        preprocess_dataset(d, tmp_path / 'cache3', min_size=16, verbose=False)
    with pytest.raises(ValueError, match=r"config field 'dataset': .*BraTS_001\.npz has 3 classes \(raw labels \[0, 1, 2\]\); 'brats' has 4"):
        prepare_data(cfg.update(data=str(tmp_path / 'cache3')))

def test_nnunet_bad_input(tmp_path):
    d = make_test_nnunet(tmp_path / 'Dataset137_BraTS', n_cases=2, missing={0: ('t1',), 1: ('t1',)})  # T1 is channel 0
    with pytest.raises(ValueError, match=r"dataset\.json: channel 0 \(T1\) has no file in imagesTr/ or imagesTs/ \(expected CASE_0000\.nii\.gz\)"):
        find_nnunet_cases(d)
    d = make_test_nnunet(tmp_path / 'Dataset140_BraTS', n_cases=2)
    f = d / 'imagesTr' / 'BraTS_002_0002.nii.gz'; v = nib.load(str(f)); v = nib.Nifti1Image(np.asarray(v.dataobj), v.affine)
    nib.save(nib.Nifti1Image(np.asarray(v.dataobj)[:, :, :10], v.affine), str(f))
    with pytest.raises(ValueError, match=r'BraTS_002_0002\.nii\.gz: shape \(24, 28, 10\) differs from BraTS_002_0003\.nii\.gz'):
        read_nnunet_case(find_nnunet_cases(d)['BraTS_002'], 'BraTS_002')
    nib.save(nib.Nifti1Image(np.asarray(v.dataobj), v.affine @ np.diag([1, 1, 2, 1])), str(f))
    with pytest.raises(ValueError, match=r'BraTS_002_0002\.nii\.gz: affine differs from BraTS_002_0003\.nii\.gz'):
        read_nnunet_case(find_nnunet_cases(d)['BraTS_002'], 'BraTS_002')
    f = d / 'labelsTr' / 'BraTS_001.nii.gz'; lab = _labels(f).copy(); lab[0, 0, 0] = 4
    nib.save(nib.Nifti1Image(lab, nib.load(str(f)).affine), str(f))
    with pytest.raises(ValueError, match=r'labelsTr/BraTS_001\.nii\.gz: label values \[4\] outside the expected set \(0, 2, 1, 3\)'):
        read_nnunet_case(find_nnunet_cases(d)['BraTS_001'], 'BraTS_001')
    nib.save(v, str(d / 'imagesTr' / 'BraTS_001_0004.nii.gz'))
    with pytest.raises(ValueError, match=r"BraTS_001_0004\.nii\.gz: channel 4, but .*dataset\.json declares 4 channels"):
        list_cases(d)
    (d / 'imagesTr' / 'BraTS_001_0004.nii.gz').rename(d / 'imagesTr' / 'BraTS_001.nii.gz')
    with pytest.raises(ValueError, match=r'BraTS_001\.nii\.gz: not named CASE_XXXX\.nii\.gz'): list_cases(d)
    (d / 'imagesTr' / 'BraTS_001.nii.gz').unlink()
    meta = json.loads((d / 'dataset.json').read_text())
    (d / 'dataset.json').write_text(json.dumps(dict(meta, labels=dict(meta['labels'], edema='1'))))
    with pytest.raises(ValueError, match='label values must be integers'): list_cases(d)
    (d / 'dataset.json').write_text(json.dumps(dict(meta, file_ending='.png')))
    with pytest.raises(ValueError, match=r"file_ending '\.png'; only NIfTI"): detect_layout(d)
    (d / 'dataset.json').write_text('{"labels": ')
    with pytest.raises(ValueError, match=r'dataset\.json: not valid JSON'): detect_layout(d)
    (d / 'dataset.json').unlink()
    with pytest.raises(FileNotFoundError, match=r'dataset\.json: missing'): detect_layout(d)

# ---- a tiny train → evaluate round trip through the commands, on one layout

def _in_process(fn, **kw)->str:
    "A command's function called in this process at one thread (the console command's code without a torch import); its stdout."
    import contextlib, io, torch, warnings
    log, n = io.StringIO(), torch.get_num_threads(); torch.set_num_threads(1)
    try:
        with contextlib.redirect_stdout(log), warnings.catch_warnings():
            warnings.simplefilter('ignore'); fn(**{k: str(v) if isinstance(v, Path) else v for k, v in kw.items()})
    finally: torch.set_num_threads(n)
    return log.getvalue()

def _layout_fixtures(root:Path)->dict:
    "Each BraTS-like layout's fixture (two labelled cases of the same synthetic tumours): layout → (folder, case → label file)."
    out = {}
    d = root / 'brats2021'
    for i in range(2): make_test_case(d / f'BraTS2021_{i:05d}', shape=(32, 32, 20), seed=i)
    out['brats'] = d, {f'BraTS2021_{i:05d}': d / f'BraTS2021_{i:05d}' / f'BraTS2021_{i:05d}_seg.nii.gz' for i in range(2)}
    d = make_test_msd(root / 'Task01_BrainTumour', n_cases=2, shape=(32, 32, 20))
    out['msd'] = d, {f'BRATS_{i:03d}': d / 'labelsTr' / f'BRATS_{i:03d}.nii.gz' for i in (1, 2)}
    d = make_test_nnunet(root / 'Dataset137_BraTS', n_cases=2, shape=(32, 32, 20), missing={1: ('t2',)})
    out['nnunet'] = d, {f'BraTS_{i:03d}': d / 'labelsTr' / f'BraTS_{i:03d}.nii.gz' for i in (1, 2)}
    d = make_test_nnunet(root / 'Dataset138_NoT1ce', n_cases=2, shape=(32, 32, 20), channel_names=('T1', 'T2', 'Flair'))
    out['nnunet, 3 of BraTS\'s channels'] = d, {f'BraTS_{i:03d}': d / 'labelsTr' / f'BraTS_{i:03d}.nii.gz' for i in (1, 2)}
    d = root / 'rfnet'
    for sub in ('vol', 'seg'): (d / sub).mkdir(parents=True)
    for i in range(2):
        vols, label, _ = synthetic_volumes((32, 32, 20), seed=i)
        np.save(d / 'vol' / f'HG_case{i}_vol.npy', np.stack([vols[m] for m in BRATS_MODALITIES], -1) / 100)
        np.save(d / 'seg' / f'HG_case{i}_seg.npy', encode_labels(label))
    out['rfnet'] = d, {}
    return out

def test_cli_on_every_layout(tmp_path):
    """dmafnet-preprocess, -train, -evaluate and -predict on each layout's fixture, at one thread: one 2D model trained (2 steps)
    on the BraTS 2023 cache, then each layout's raw folder evaluated and predicted (one label file per case, nnU-Net's way)."""
    d = tmp_path / 'gli'
    for i in range(4): make_test_brats2023_case(d / f'BraTS-GLI-{i:05d}-000', shape=(32, 32, 20), seed=i)
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', PYTHONWARNINGS='ignore')
    def run(*a):
        r = subprocess.run([str(x) for x in a], capture_output=True, text=True, env=env, timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
        return r.stdout
    layouts = _layout_fixtures(tmp_path / 'layouts')
    assert 'ready in' in run(BIN / 'dmafnet-preprocess', '--data', d, '--out', tmp_path / 'cache', '--min_size', '32')
    run(BIN / 'dmafnet-train', '--preset', 'phantom', '--data', tmp_path / 'cache', '--out', tmp_path / 'run', '--epochs', '1',
        '--set', 'base_width=4', 'patch_size=[32,32]', 'batch_size=2', 'steps_per_epoch=2', 'val_cases=1',
        'val_subsets=[14]', 'val_every=1', 'progress=false')
    ck = next((tmp_path / 'run' / 'checkpoints').glob('*.pt'))
    out = run(BIN / 'dmafnet-evaluate', '--checkpoint', ck, '--data', tmp_path / 'cache', '--out', tmp_path / 'report',
              '--split', 'all', '--cases', '2', '--subset_ids', '14')
    assert 'mean Dice' in out and (tmp_path / 'report' / 'scores.csv').is_file()
    # a raw 2023 case folder predicted: the release's geometry and its own label values (no 4)
    run(BIN / 'dmafnet-predict', '--checkpoint', ck, '--case', d / 'BraTS-GLI-00000-000', '--out', tmp_path / 'pred.nii.gz')
    ref = nib.load(str(d / 'BraTS-GLI-00000-000' / 'BraTS-GLI-00000-000-t2f.nii.gz')); img = nib.load(str(tmp_path / 'pred.nii.gz'))
    assert img.shape == ref.shape and np.allclose(img.affine, ref.affine) and set(np.unique(img.dataobj).tolist()) <= {0, 1, 2, 3}
    # each layout preprocessed, and its raw folder evaluated and predicted as it is, by the commands' functions in this
    # process (the same code as the console commands, without a torch import per call)
    from dmafnet.evaluate import evaluate_cli, predict_cli
    for name, (folder, labels) in layouts.items():
        if name != 'rfnet':   # (RFNet's npy is read as it is, not preprocessed)
            assert 'ready in' in _in_process(preprocess_cli, data=folder, out=tmp_path / f'cache_{name}', min_size=32)
        out = _in_process(evaluate_cli, checkpoint=ck, data=folder, out=tmp_path / f'report_{name}', split='all')
        n = 7 if '3 of' in name else 15   # without T1ce: the 7 subsets of the other three, in the model's channel order
        assert f'2 cases × {n} subsets' in out, (name, out)
        _in_process(predict_cli, checkpoint=ck, data=folder, case='all', out=tmp_path / f'pred_{name}')
        _check_predictions(tmp_path / f'pred_{name}', folder, labels, name)

def _check_predictions(pred_dir:Path, folder:Path, labels:dict, name:str):
    "One label file per case of `folder`, each in its input's geometry with the release's own label values."
    for case, f in labels.items():
        pred, ref = nib.load(str(pred_dir / f'{case}.nii.gz')), nib.load(str(f))
        assert pred.shape == ref.shape and np.allclose(pred.affine, ref.affine), (name, case)
        assert set(np.unique(pred.dataobj).tolist()) <= set(np.unique(ref.dataobj).tolist()) | {0}, (name, case)
    assert len(list(pred_dir.glob('*.nii.gz'))) == len(list_cases(folder)), name  # MSD: imagesTs/ too

def test_cli_on_myops(tmp_path):
    "MyoPS2020 (3 sequences, 6 classes) through dmafnet-preprocess, -train (its preset, 2 steps), -evaluate on its 7 subsets and -predict."
    raw = tmp_path / 'myops'
    for i in range(5): make_test_myops_case(raw, f'myops_training_10{i}', seed=i, missing=('t2',) if i == 1 else ())
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', PYTHONWARNINGS='ignore')
    assert '5 of 5 cases ready' in _in_process(preprocess_cli, data=raw, out=tmp_path / 'cache', crop_size=48)
    r = subprocess.run([str(BIN / 'dmafnet-train'), '--preset', 'myops2020', '--data', str(tmp_path / 'cache'), '--out', str(tmp_path / 'run'),
                        '--epochs', '1', '--set', 'base_width=4', 'patch_size=[32,32]', 'batch_size=2', 'steps_per_epoch=2',
                        'val_cases=1', 'val_every=1', 'progress=off', 'workers=0'], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    from dmafnet.core import MYOPS_LABELS, MYOPS_REGIONS
    from dmafnet.evaluate import evaluate_cli, predict_cli
    ck = tmp_path / 'run' / 'checkpoints' / 'last.pt'
    out = _in_process(evaluate_cli, checkpoint=ck, data=raw, out=tmp_path / 'report', split='all')
    _in_process(predict_cli, checkpoint=ck, data=raw, case='all', out=tmp_path / 'pred')
    assert '5 cases × 7 subsets' in out and all(f'{r} ' in out for r in MYOPS_REGIONS), out
    ref = nib.load(str(raw / 'myops_training_100_gd.nii.gz')); pred = nib.load(str(tmp_path / 'pred' / 'myops_training_100.nii.gz'))
    assert pred.shape == ref.shape and np.allclose(pred.affine, ref.affine)
    assert set(np.unique(pred.dataobj).tolist()) <= set(MYOPS_LABELS) and len(list((tmp_path / 'pred').iterdir())) == 5

# ---- M ≠ 4: a 2-modality data set of its own (CT, PET; labels lesion/necrosis) and 3 of BraTS's (FLAIR, T1gd, T2)
@pytest.mark.parametrize('M', [2, 3])
def test_cli_any_number_of_modalities(tmp_path, M):
    "nnU-Net data sets with 2 and 3 channels: dmafnet-preprocess, -masks, -train (dataset=custom), -evaluate on all 2^M − 1 subsets, -predict."
    chans, mods = {2: (('CT', 'PET'), ('CT', 'PET')), 3: (('FLAIR', 'T1gd', 'T2'), ('flair', 't1ce', 't2'))}[M]
    labels = {'background': 0, 'lesion': 1, 'necrosis': 2} if M == 2 else None   # M = 3: BraTS's labels, so WT/TC/ET
    d = make_test_nnunet(tmp_path / 'Dataset300_Any', n_cases=6, shape=(32, 32, 20), channel_names=chans, labels=labels,
                         missing={1: (chans[0],)} if M == 2 else None)
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', PYTHONWARNINGS='ignore')
    def run(*a):
        r = subprocess.run([str(x) for x in a], capture_output=True, text=True, env=env, timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
        return r.stdout
    from dmafnet.missing import masks_cli
    from dmafnet.evaluate import evaluate_cli, predict_cli
    assert 'ready in' in _in_process(preprocess_cli, data=d, out=tmp_path / 'cache', min_size=32)
    rates = ','.join(['0.2', '0.4', '0.1'][:M])
    assert f'available: {mods[0]}' in _in_process(masks_cli, cases=tmp_path / 'cache' / 'train.txt', out=tmp_path / 'masks.csv',
                                                  rates=rates, modalities=','.join(mods))
    run(BIN / 'dmafnet-train', '--preset', 'phantom', '--data', tmp_path / 'cache', '--out', tmp_path / 'run', '--epochs', '1',
        '--set', 'dataset=custom', f"mask_csv={tmp_path / 'masks.csv'}", 'base_width=4', 'patch_size=[32,32]', 'batch_size=2',
        'steps_per_epoch=2', 'val_cases=1', 'val_every=1', 'progress=off')
    from dmafnet.config import load_config
    cfg = load_config(tmp_path / 'run' / 'config.yaml')
    regions = ['lesion', 'necrosis'] if M == 2 else ['WT', 'TC', 'ET']
    assert cfg.modality_names == mods and cfg.n_classes == (3 if M == 2 else 4) and list(cfg.regions) == regions
    ck = tmp_path / 'run' / 'checkpoints' / 'last.pt'
    out = _in_process(evaluate_cli, checkpoint=ck, data=tmp_path / 'cache', out=tmp_path / 'report', split='all')
    assert f'6 cases × {2 ** M - 1} subsets' in out and all(f'{r} ' in out for r in regions)
    import pandas as pd
    scores = pd.read_csv(tmp_path / 'report' / 'scores.csv')
    assert scores.subset_id.nunique() == 2 ** M - 1 and {f'dice_{r}' for r in regions} <= set(scores.columns)
    assert set(mods) <= set(scores.columns)
    _in_process(predict_cli, checkpoint=ck, case=tmp_path / 'cache' / 'BraTS_001.npz', out=tmp_path / 'pred.nii.gz')
    pred, ref = nib.load(str(tmp_path / 'pred.nii.gz')), nib.load(str(d / 'labelsTr' / 'BraTS_001.nii.gz'))
    assert pred.shape == ref.shape and np.allclose(pred.affine, ref.affine)
    assert set(np.unique(np.asarray(pred.dataobj)).tolist()) <= set(np.unique(np.asarray(ref.dataobj)).tolist()) | {0}
