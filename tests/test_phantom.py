"The built-in phantom: determinism, labels, the contrast rules of real MRI, the BraTS layout and its command."
import json, subprocess, sys
from pathlib import Path
import numpy as np, nibabel as nib, pytest
from dmafnet.phantom import make_phantom, phantom_case, region_means, check_contrasts

BIN = Path(sys.executable).parent
MODS = ('flair', 't1ce', 't1', 't2')

def _arrays(case_dir):
    return {f.name: np.asarray(nib.load(f).dataobj) for f in sorted(Path(case_dir).glob('*.nii.gz'))}

def test_same_seed_same_files(tmp_path):
    a = make_phantom(tmp_path / 'a', n_cases=2, seed=4, spacing=3.0)
    b = make_phantom(tmp_path / 'b', n_cases=2, seed=4, spacing=3.0)
    c = make_phantom(tmp_path / 'c', n_cases=1, seed=5, spacing=3.0)
    for x, y in zip(a, b):
        ax, ay = _arrays(x), _arrays(y)
        assert list(ax) == list(ay) and len(ax) == 5
        for k in ax: np.testing.assert_array_equal(ax[k], ay[k])
    assert not np.array_equal(_arrays(a[0])[f'{a[0].name}_t1ce.nii.gz'], _arrays(c[0])[f'{c[0].name}_t1ce.nii.gz'])
    # the files hold what the in-memory generator makes; a case depends on (seed, index) only
    case = phantom_case(1, seed=4, spacing=3.0)
    np.testing.assert_array_equal(_arrays(a[1])[f'{a[1].name}_seg.nii.gz'], case['label'])
    np.testing.assert_array_equal(_arrays(a[1])[f'{a[1].name}_t2.nii.gz'], case['image'][3])

def test_thread_count_does_not_change_a_case():
    threadpoolctl = pytest.importorskip('threadpoolctl')
    with threadpoolctl.threadpool_limits(2): a = phantom_case(3, seed=1)
    with threadpoolctl.threadpool_limits(1): b = phantom_case(3, seed=1)
    np.testing.assert_array_equal(a['image'], b['image']); np.testing.assert_array_equal(a['label'], b['label'])

def test_labels_and_parts():
    for i in range(6):
        case = phantom_case(i, seed=2)
        values, counts = np.unique(case['label'], return_counts=True)
        assert set(values.tolist()) == {0, 1, 2, 4}, (i, values)      # every tumour has all three parts
        assert counts[1:].min() >= 8
        assert (case['label'][case['tissue'] == 0] == 0).all()          # inside the brain
        assert (case['image'][:, case['tissue'] == 0] == 0).all()      # background exactly 0
        assert (case['image'][:, case['tissue'] > 0] > 0).all()        # brain never 0

def test_contrast_rules():
    for i in range(5):
        rm = region_means(phantom_case(i, seed=9))
        rules = check_contrasts(rm)
        assert all(rules.values()), (i, [k for k, v in rules.items() if not v])
        assert rm.loc['t1ce', 'enhancing'] > rm.loc['t1ce', 'edema']                    # ET bright on T1ce
        assert rm.loc['t1', 'enhancing'] < 1.05                                          # ET not bright on T1
        assert rm.loc['flair', 'edema'] > 1 and rm.loc['t2', 'edema'] > 1                # edema > WM
        assert rm.loc['t2', 'necrosis'] > rm.loc['t1', 'necrosis']                       # core: T2 > T1
        assert rm.loc['t1', 'necrosis'] < rm.loc['t1', 'edema']                          # core dark on T1
        assert rm.loc['flair', 'necrosis'] < rm.loc['flair', 'edema']                    # FLAIR: core < edema
        assert rm.loc['t1', 'wm'] > rm.loc['t1', 'gm'] > rm.loc['t1', 'csf']
        assert rm.loc['t2', 'csf'] > rm.loc['t2', 'gm'] > rm.loc['t2', 'wm']
        assert rm.loc['flair', 'gm'] > rm.loc['flair', 'wm'] > rm.loc['flair', 'csf']
        # no single modality sees everything: ET separates from edema by far the most on T1ce
        sep = {m: abs(rm.loc[m, 'enhancing'] / rm.loc[m, 'edema'] - 1) for m in MODS}
        assert max(sep, key=sep.get) == 't1ce' and sep['t1ce'] > 2 * max(sep[m] for m in MODS if m != 't1ce')

def test_nifti_geometry(tmp_path):
    d = make_phantom(tmp_path, n_cases=1, seed=0, spacing=2.0)[0]
    img = nib.load(d / f'{d.name}_flair.nii.gz')
    assert img.get_data_dtype() == np.int16 and img.shape == (99, 117, 95)
    np.testing.assert_allclose(img.header.get_zooms(), (2, 2, 2))
    np.testing.assert_allclose(np.diag(img.affine)[:3], (2, 2, 2))
    seg = nib.load(d / f'{d.name}_seg.nii.gz')
    assert seg.get_data_dtype() == np.uint8
    np.testing.assert_array_equal(seg.affine, img.affine)
    info = json.loads((tmp_path / 'phantom.json').read_text())
    assert info['cases'] == [d.name] and info['seed'] == 0

def test_brats_reader_loads_it(tmp_path):
    import dmafnet.data as data
    d = make_phantom(tmp_path, n_cases=1, seed=1, spacing=3.0)[0]
    raw = data.read_brats_case(d)
    assert raw['image'].shape[0] == 4 and raw['availability'].all()
    assert set(np.unique(raw['label']).tolist()) == {0, 1, 2, 4}
    np.testing.assert_allclose(raw['spacing'], (3, 3, 3))

def test_cli(tmp_path):
    exe = BIN / 'dmafnet-phantom'
    if not exe.exists(): pytest.skip(f'{exe} not installed (pip install -e .)')
    r = subprocess.run([str(exe), '--help'], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and '--out' in r.stdout and '--spacing' in r.stdout
    r = subprocess.run([str(exe), '--out', str(tmp_path / 'ph'), '--cases', '2', '--seed', '3', '--spacing', '3'],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert 'wrote 2 cases' in r.stdout
    for i in (1, 2):
        name = f'BraTS20_Training_{i:03d}'
        assert sorted(p.name for p in (tmp_path / 'ph' / name).iterdir()) == \
            sorted(f'{name}_{k}.nii.gz' for k in (*MODS, 'seg'))
    r = subprocess.run([str(exe), '--cases', '2'], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and '--out' in r.stderr
