"""Property tests of `DMAFNet` (dmafnet.network) and the fusions (dmafnet.dmaf): missing means missing, per-sample
independence, encode-once/fuse-many, gradients — over fusions, map modes and 2D/3D, at tiny sizes."""
from itertools import product
import pytest, torch
from dmafnet.network import DMAFNet, pad_to_multiple
from dmafnet.dmaf import DMAF, make_fusion

S3 = (16, 32, 32)  # smallest cheap 3D input: deepest grid 1×2×2
@pytest.fixture(autouse=True)
def one_thread():
    "Tiny tensors: on a shared CPU two threads mostly wait for each other (measured up to 40× slower)."
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

SUBSETS = [torch.tensor([s]) for s in product([False, True], repeat=4) if any(s)]
VARIANTS = [dict(fusion='dmaf'), dict(fusion='dmaf', maps='per_level', heads=2, layers=2),
            dict(fusion='mean'), dict(fusion='concat')]

def _net(spatial_dims=2, seed=0, **kw):
    torch.manual_seed(seed)
    return DMAFNet(4, 4, spatial_dims, base_width=4, uniform_init=False, **kw)

def _dims(kw):
    "3D for the default DMAF model, 2D for the other variants (keeps the suite fast on a shared CPU)."
    return 3 if kw == VARIANTS[0] else 2

def _fields(out):
    return [out.logits, *out.deep_logits, out.modality_logits, out.modality_features, out.fused_features,
            *([] if out.attention is None else [out.attention])]

@pytest.mark.parametrize('kw', VARIANTS, ids=lambda k: '-'.join(map(str, k.values())))
def test_missing_pixels_change_no_bit(kw):
    net = _net(**kw).eval()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 4, 32, 32, generator=g)
    a = torch.tensor([[1, 0, 1, 0], [0, 0, 0, 1], [1, 1, 1, 0]]).bool()
    y = torch.where(a[..., None, None], x, 1e4 * torch.randn(x.shape, generator=g))
    with torch.no_grad(): o1, o2 = net(x, a), net(y, a)
    for p, q in zip(_fields(o1), _fields(o2)): assert torch.equal(p, q)
    ml = o1.modality_logits
    assert (ml[~a].abs().sum() == 0) and all(ml[b, m].abs().sum() > 0 for b, m in a.nonzero().tolist())

@pytest.mark.parametrize('spatial_dims', [2, 3])
def test_fuse_decode_equals_forward_for_all_15_subsets(spatial_dims):
    net = _net(spatial_dims).eval()
    x = torch.randn(1, 4, *(S3 if spatial_dims == 3 else (32, 32)))
    with torch.no_grad():
        pyr = net.encode(x)
        for s in SUBSETS:
            ref, once = net(x, s), net.fuse_decode(pyr, s)
            for p, q in zip(_fields(ref), _fields(once)): assert torch.equal(p, q), s
            if spatial_dims == 2:
                assert torch.equal(net.fuse_decode(pyr, s, modality_logits=False).logits, ref.logits)

@pytest.mark.parametrize('kw', VARIANTS, ids=lambda k: '-'.join(map(str, k.values())))
def test_mixed_batch_equals_each_sample_alone(kw):
    sd = _dims(kw); net = _net(sd, **kw).eval()
    g = torch.Generator().manual_seed(2)
    a = torch.stack([SUBSETS[i][0] for i in torch.randperm(15, generator=g)[:3].tolist()])
    x = torch.randn(3, 4, *(S3 if sd == 3 else (32, 32)), generator=g)
    with torch.no_grad():
        batch = net(x, a)
        for i in range(3):
            alone = net(x[i:i + 1], a[i:i + 1])
            for p, q in zip(_fields(alone), _fields(batch)): torch.testing.assert_close(p[0], q[i], rtol=1e-4, atol=1e-4)

@pytest.mark.parametrize('kw', VARIANTS, ids=lambda k: '-'.join(map(str, k.values())))
def test_maps_and_gradients(kw):
    sd = _dims(kw); net = _net(sd, **kw)
    x = torch.randn(2, 4, *(S3 if sd == 3 else (32, 32)))
    a = torch.tensor([[1, 0, 1, 0], [1, 0, 0, 1]]).bool()  # t1ce missing everywhere, t1/t2 in one sample each
    out = net(x, a)
    if out.attention is not None:
        assert out.attention[~a].abs().sum() == 0
        torch.testing.assert_close(out.attention.sum(1).detach(), torch.ones_like(out.attention[:, 0]))
    loss = out.logits.square().mean() + sum(d.square().mean() for d in out.deep_logits) \
           + out.modality_logits.square().mean()
    loss.backward()
    for m in range(4):
        grads = [p.grad for p in net.encoders[m].parameters()]
        if a[:, m].any(): assert all(g is not None and g.abs().sum() > 0 for g in grads), m
        else: assert all(g is None or g.abs().sum() == 0 for g in grads), m

def test_grad_scale_is_exact_and_switches_off():
    net = _net(3, fusion='dmaf')
    x, a = torch.randn(1, 4, *S3), torch.tensor([[1, 1, 0, 1]]).bool()
    def grads(k):
        net.zero_grad(); net.set_grad_scale(k)
        o = net(x, a); (o.logits.square().mean() + o.modality_logits.square().mean()).backward()
        return {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}
    k = torch.tensor([4., 0.5, 8., 0.125])
    g0, gk, g1 = grads(None), grads(k), grads(None)
    for n in g0:
        f = k[int(n.split('.')[1])] if n.startswith('encoders.') else 1.
        assert torch.equal(gk[n], g0[n] * f), n
        assert torch.equal(g1[n], g0[n]), n
    gz = grads(torch.zeros(4))
    assert all(v.abs().sum() == 0 for n, v in gz.items() if n.startswith('encoders.'))

def test_dmaf_init_is_mean_fusion_3d():
    torch.manual_seed(0)
    chans = [4, 8, 16, 32, 64]
    pyr = [torch.randn(2, 4, c, 32 // 2**l, 32 // 2**l, 32 // 2**l) for l, c in enumerate(chans)]
    for s in SUBSETS:
        a = s.expand(2, 4)
        f_d, att = make_fusion('dmaf', 4, chans, 3)(pyr, a)
        f_m, _ = make_fusion('mean', 4, chans, 3)(pyr, a)
        for p, q in zip(f_d, f_m): torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(att, a[..., None, None, None] / a.sum(1)[:, None, None, None, None].float()
                                   * torch.ones_like(att))

def test_dmaf_maps_sum_to_one_on_random_masks():
    torch.manual_seed(3)
    dmaf = DMAF(4, 16, spatial_dims=3, heads=2, layers=3, uniform_init=False)
    for _ in range(5):
        a = torch.rand(6, 4) < 0.5; a[torch.arange(6), torch.randint(0, 4, (6,))] = True
        maps = dmaf(torch.randn(6, 4, 16, 3, 3, 3), a).detach()
        assert maps[~a].abs().sum() == 0
        torch.testing.assert_close(maps.sum(1), torch.ones(6, 3, 3, 3))

def test_padding_round_trip():
    net = _net(2).eval()
    x = torch.randn(1, 4, 30, 40)
    with pytest.raises(ValueError, match='multiple of 16'): net(x, [1, 1, 1, 1])
    xp, sl = pad_to_multiple(x)
    with torch.no_grad(): out = net(xp, [1, 1, 1, 1])
    assert out.logits[sl].shape == (1, 4, 30, 40)

def test_options_build_and_keep_the_map_properties():
    "Per-level maps on a given token grid, a probe-only DMAF, token width, dropout; hparams rebuild the model."
    chans = [4, 8, 16, 32, 64]
    pyr = [torch.randn(2, 4, c, 32 // 2**l, 32 // 2**l) for l, c in enumerate(chans)]
    a = torch.tensor([[1, 0, 1, 1], [0, 1, 0, 0]]).bool()
    for opts in (dict(maps='per_level', token_grid=4), dict(layers=1), dict(token_channels=16, heads=2),
                 dict(dropout=0.1, uniform_init=False)):
        fused, att = make_fusion('dmaf', 4, chans, 2, **opts)(pyr, a)
        assert [f.shape for f in fused] == [p[:, 0].shape for p in pyr] and att.shape == (2, 4, 2, 2)
        assert att[~a].abs().sum() == 0
        torch.testing.assert_close(att.sum(1).detach(), torch.ones(2, 2, 2))
    net = _net(2, maps='per_level', token_grid=4, detach_maps=True)
    clone = DMAFNet(**net.hparams); clone.load_state_dict(net.state_dict())
    x = torch.randn(1, 4, 32, 32)
    with torch.no_grad(): assert torch.equal(net.eval()(x, [1, 1, 0, 1]).logits, clone.eval()(x, [1, 1, 0, 1]).logits)
