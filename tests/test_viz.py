"Integration tests of the pictures and the viewer: widget callbacks driven without a browser, checkpoints, 3D caching."
from pathlib import Path
import numpy as np
import pytest
import torch
import matplotlib
matplotlib.use('Agg')

from dmafnet.network import DMAFNet
from dmafnet.viewer import Viewer, case_sources, run_cache
from dmafnet import viewer as viewer_module

torch.set_num_threads(1)   # the CPU is shared


def _case(name, seed=0, shape=(48, 40, 12), missing=()):
    "A small BraTS-like case: a lesion whose parts differ between the four channels."
    rng = np.random.default_rng(seed)
    label = np.zeros(shape, np.uint8)
    label[10:30, 8:28, 3:9] = 2; label[14:26, 12:24, 4:8] = 1; label[16:24, 14:22, 5:7] = 3
    image = np.stack([1.0 + (label > 0), 1.0 + 2 * (label == 3), 1.0 - 0.5 * (label > 0), 1.0 + (label == 2)])
    image = (image + rng.normal(0, 0.2, image.shape)).astype(np.float32)
    avail = np.ones(4, bool); avail[list(missing)] = False
    image[~avail] = 0
    return dict(name=name, image=image, label=label, availability=avail)


@pytest.fixture
def model2d():
    torch.manual_seed(0)
    return DMAFNet(4, 4, spatial_dims=2, base_width=2).eval()


def _drawn_maps(viewer):
    "The four DMAF-map arrays as drawn in the viewer's figure (bottom row)."
    M = viewer.n_modalities
    return [np.asarray(ax.images[0].get_array()) for ax in viewer.figure.axes[M + 2:2 * M + 2]]


def test_callbacks_without_browser(model2d):
    v = Viewer(model2d, [_case('a'), _case('b', seed=1)], patch_size=(48, 48))
    v.widget(); c = v.controls                                # builds the controls
    assert v.available.all() and v.case_name == 'a'
    png0, maps0 = c['picture'].value, [m.copy() for m in _drawn_maps(v)]
    c['t1ce'].value = False                                    # a click on the checkbox
    assert v.available.tolist() == [True, False, True, True] and v.subset_name == 'flair+t1+t2'
    assert c['picture'].value != png0                          # the rendered picture changed
    maps1 = _drawn_maps(v)
    assert np.abs(maps1[1]).max() == 0                         # the unticked modality's drawn map is exactly zero
    assert np.abs(v.last['attention'][1]).max() == 0
    assert not np.allclose(maps0[0], maps1[0])                 # the others take its weight
    np.testing.assert_allclose(v.last['attention'].sum(0), 1, atol=1e-5)
    # unticking everything: the last one is refused and ticked again
    c['flair'].value = False; c['t1'].value = False; c['t2'].value = False
    assert v.available.tolist() == [False, False, False, True]
    assert c['t2'].value is True and 'at least one modality' in c['message'].value
    assert any('at least one modality' in t.get_text() for ax in v.figure.axes for t in ax.texts)  # said in the figure
    # slider and case dropdown
    c['slice'].value = 2
    assert v.z == v.last['z'] == 2
    c['case'].value = 'b'
    assert v.case_name == 'b' and v.last['case'] == 'b' and c['slice'].value == v.z
    assert v.available.tolist() == [False, False, False, True]  # the ticks carry over to the next case
    c['flair'].value = True
    assert v.message == '' and c['message'].value == ''


def test_methods_refuse_clearly(model2d):
    v = Viewer(model2d, {'lacks_t1': _case('x', missing=[2])})
    assert v.available.tolist() == [True, True, False, True]
    assert v.set_available('t1', True) is False and 'no t1 on disk' in v.message
    assert v.set_available([False] * 4) is False and 'at least one' in v.message
    assert v.set_available([True, False, False, False]) is True and v.subset_id == 3
    v.widget()
    assert v.controls['t1'].disabled and not v.controls['t1'].value
    with pytest.raises(ValueError, match='outside 0..'): v.set_slice(99)
    with pytest.raises(ValueError, match="no modality 'dwi'"): v.set_available('dwi', True)
    with pytest.raises(ValueError, match="no case 'nobody'"): v.set_case('nobody')
    with pytest.raises(ValueError, match='3 modality names'): Viewer(v.model, [_case('a')], modalities=('a', 'b', 'c'))


def test_case_sources(tmp_path):
    from dmafnet.data import save_cached
    cases = [_case('p'), _case('q')]
    for c in cases:
        save_cached(dict(c, crop_box=np.array([[0, s] for s in c['label'].shape]), original_shape=np.array(c['label'].shape)),
                    tmp_path / f"{c['name']}.npz")
    src = case_sources([tmp_path / 'p.npz', cases[1]])
    assert list(src) == ['p', 'q'] and src['q']() is cases[1]
    np.testing.assert_array_equal(src['p']()['label'], cases[0]['label'])
    (tmp_path / 'cases.csv').write_text('name\np\nq\n')
    assert list(case_sources(tmp_path)) == ['p', 'q'] and list(case_sources(tmp_path, names=['q'])) == ['q']
    with pytest.raises(ValueError, match='two cases'): case_sources([cases[0], cases[0]])
    assert list(case_sources(cases, names=['q'])) == ['q']


def test_3d_predicts_once_per_subset(monkeypatch):
    calls = []
    real = viewer_module.predict_subsets
    monkeypatch.setattr(viewer_module, 'predict_subsets', lambda *a, **k: calls.append(1) or real(*a, **k))
    torch.manual_seed(0)
    case = _case('vol', shape=(32, 32, 16))
    v = Viewer(DMAFNet(4, 4, spatial_dims=3, base_width=2), [case], patch_size=(32, 32, 16))
    o = v.outputs()
    assert o['pred'].shape == (32, 32) and o['attention'].shape == (4, 32, 32)
    for z in range(3): v.set_slice(z); v.render()
    assert len(calls) == 1                                   # the slider reuses the cached volume
    v.set_available('t2', False); o = v.outputs()
    assert len(calls) == 2 and np.abs(o['attention'][3]).max() == 0
    np.testing.assert_allclose(o['attention'].sum(0), 1, atol=1e-5)


def test_mean_fusion_has_a_note():
    v = Viewer(DMAFNet(4, 4, spatial_dims=2, base_width=2, fusion='mean'), [_case('m')])
    assert not v.has_maps and v.outputs()['attention'] is None
    fig = v.render()
    assert any('mean or concatenation' in t.get_text() for t in fig.axes[6].texts)


def test_from_checkpoint_of_a_run(tmp_path, monkeypatch):
    "A tiny phantom run trained with relative paths, opened from another working directory."
    from dmafnet.phantom import make_phantom
    from dmafnet.preprocess import preprocess_dataset
    from dmafnet.config import preset
    from dmafnet.train import train
    work = tmp_path / 'work'; work.mkdir(); monkeypatch.chdir(work)
    make_phantom('raw', n_cases=3, spacing=4.0)
    preprocess_dataset('raw', 'cache', verbose=False)
    cfg = preset('phantom', data='cache', out='run', base_width=2, patch_size=(32, 32), batch_size=2, epochs=1,
                 steps_per_epoch=1, missing='pdt', val_every=0, progress=False, threads=1)
    run = Path(train(cfg)).resolve()
    elsewhere = tmp_path / 'elsewhere'; elsewhere.mkdir(); monkeypatch.chdir(elsewhere)
    ckpt = run / 'checkpoints' / 'last.pt'
    v = Viewer.from_checkpoint(ckpt, split='all')
    assert v.names == sorted(p.name[:-4] for p in (work / 'cache').glob('*.npz'))
    assert v.patch_size is None and v.modalities == ('flair', 't1ce', 't1', 't2')   # 2D: whole slices, as evaluation
    from dmafnet.trainparts import load_model
    assert run_cache(load_model(ckpt)[1], ckpt).resolve() == (work / 'cache').resolve()   # relative paths, other cwd
    v.widget(); png = v.controls['picture'].value
    v.controls['flair'].value = False
    assert v.controls['picture'].value != png and np.abs(v.last['attention'][0]).max() == 0

