"DTM (SPEC §4): ω from masks, RP sign and β dynamics, ‖β‖ = √M, gradient scaling, checkpoints, DDP reduction."
import math
import numpy as np, pandas as pd
import pytest, torch
import torch.nn as nn
from dmafnet.dtm import DTM, STAT_ROWS, availability_table, omega_from_counts
from dmafnet.losses import DMAFCriterion
from dmafnet.testing import synthetic_output

ALL4 = torch.ones(2, 4, dtype=torch.bool)


def _mr2468_like(n=219, seed=0):
    "A table with mr2468's counts: flair 90, t1ce 135, t1 184, t2 43 of 219."
    rng = np.random.default_rng(seed)
    table = np.zeros((n, 4), bool)
    for m, c in enumerate([90, 135, 184, 43]): table[rng.permutation(n)[:c], m] = True
    empty = ~table.any(1)
    for i in np.flatnonzero(empty):     # give each empty case a modality, moving it from a multi-modality case
        j = np.flatnonzero(table[:, 2] & (table.sum(1) > 1))[0]
        table[j, 2], table[i, 2] = False, True
    return table


def test_omega_is_n_over_counts():
    table = _mr2468_like()
    assert table.any(1).all() and table.sum(0).tolist() == [90, 135, 184, 43]
    dtm = DTM.from_masks(table)
    assert np.allclose(dtm.omega.numpy(), 219 / np.array([90, 135, 184, 43]))
    assert dtm.modalities[int(dtm.omega.argmax())] == 't2'
    assert dtm.counts == [90, 135, 184, 43] and dtm.n_cases == 219


def test_omega_from_passion_csv(passion_ref):
    path = passion_ref / 'Brats2020_imb_split_mr2468.csv'
    dtm = DTM.from_masks(path)
    assert dtm.counts == [90, 135, 184, 43] and dtm.n_cases == 219
    assert np.allclose(dtm.omega.numpy(), 219 / np.array([90, 135, 184, 43]))
    assert int(dtm.omega.argmax()) == 3
    df = pd.read_csv(path)
    assert np.allclose(DTM.from_masks(df).omega.numpy(), dtm.omega.numpy())


def test_availability_table_inputs(tmp_path):
    df = pd.DataFrame({'data_name': ['a', 'b'], 'mask': ['[True, False, True]', '[False, False, True]']})
    want = np.array([[1, 0, 1], [0, 0, 1]], bool)
    assert (availability_table(df) == want).all()
    df.to_csv(tmp_path / 'm.csv', index=False)
    assert (availability_table(tmp_path / 'm.csv') == want).all()
    assert (availability_table({'a': [1, 0, 1], 'b': np.array([0, 0, 1])}) == want).all()
    assert (availability_table(torch.tensor(want)) == want).all()
    with pytest.raises(FileNotFoundError, match='nope.csv'): availability_table(tmp_path / 'nope.csv')
    with pytest.raises(ValueError, match="'mask' column"): availability_table(pd.DataFrame({'x': [1]}))
    with pytest.warns(UserWarning, match='absent'): assert omega_from_counts([3, 0], 3).tolist() == [1., 0.]


def test_rp_sign_and_gate():
    dtm = DTM(4)
    fac = dtm.step(torch.tensor([[1., 1., 1., 3.]]), torch.ones(1, 4, dtype=torch.bool))
    assert fac['rp'][0, 3] < 0 < fac['rp'][0, 0]                     # lagging modality: negative RP
    assert fac['gate'][0].tolist() == [0., 0., 0., 1.]


@pytest.mark.parametrize('lagging', [0, 3])
def test_lagging_beta_rises_others_fall(lagging):
    dtm = DTM(4)
    gap = torch.ones(2, 4); gap[:, lagging] = 3.
    prev = dtm.beta.clone()
    for epoch in range(30):
        for _ in range(5): dtm.step(gap, ALL4)
        dtm.end_epoch()
        assert math.isclose(dtm.beta.norm().item(), 2.0, rel_tol=1e-5)    # ‖β‖ = √M after every update
        others = [m for m in range(4) if m != lagging]
        assert dtm.beta[lagging] > prev[lagging] and (dtm.beta[others] < prev[others]).all()
        prev = dtm.beta.clone()
    h = dtm.history
    assert len(h) == 30 * 4 and (h[h.modality == dtm.modalities[lagging]].rp < 0).all()
    assert (h.groupby('epoch').beta.apply(lambda b: np.sqrt((b ** 2).sum())) - 2).abs().max() < 1e-5


def test_beta_clip_and_norm_under_extreme_gaps():
    dtm = DTM(3, eta=10.)
    gap = torch.tensor([[1e-6, 1e-6, 100.]])
    for _ in range(5):
        dtm.step(gap, torch.ones(1, 3, dtype=torch.bool)); dtm.end_epoch()
        assert math.isclose(dtm.beta.norm().item(), math.sqrt(3), rel_tol=1e-5)
        assert torch.isfinite(dtm.beta).all() and (dtm.beta > 0).all()


def test_unobserved_modality_and_single_modality_samples():
    dtm = DTM(4)
    a = torch.tensor([[1, 0, 0, 0], [1, 1, 0, 0]]).bool()
    dtm.step(torch.tensor([[0., 0, 0, 0], [1., 2., 0, 0]]), a)
    rows = dtm.end_epoch().set_index('modality')
    assert rows.n.tolist() == [2, 1, 0, 0] and rows.n_multi.tolist() == [1, 1, 0, 0]
    assert math.isnan(rows.rp['t1']) and math.isnan(rows.gate_rate['t2'])
    assert rows.gate_rate['flair'] == 0.5                             # single sample gated on, multi not lagging
    assert math.isclose(rows.beta['t1'], rows.beta['t2'])             # unobserved: moved only by the rescaling


def test_eta_schedule_and_resume():
    dtm = DTM(4)
    assert math.isclose(dtm.eta, 0.015)
    dtm.epoch = 100; assert math.isclose(dtm.eta, 0.0225)
    dtm.epoch = 299; assert math.isclose(dtm.eta, 0.03375)
    d2 = DTM(4); d2.load_state_dict(dtm.state_dict()); assert d2.eta == dtm.eta


def test_state_dict_weights_only(tmp_path):
    dtm = DTM.from_masks(_mr2468_like(), strict_passion=True)
    for _ in range(3):
        dtm.step(torch.rand(2, 4), ALL4); dtm.end_epoch()
    dtm.step(torch.rand(2, 4), ALL4)                                  # mid-epoch statistics are kept too
    torch.save({'dtm': dtm.state_dict()}, tmp_path / 'ck.pt')
    state = torch.load(tmp_path / 'ck.pt', weights_only=True)['dtm']
    d2 = DTM(4, strict_passion=True); d2.load_state_dict(state)
    assert torch.equal(d2.beta, dtm.beta) and torch.equal(d2.omega, dtm.omega)
    assert torch.equal(d2.epoch_stats_tensor(), dtm.epoch_stats_tensor())
    assert d2.epoch == 3 and d2.counts == dtm.counts
    pd.testing.assert_frame_equal(d2.history, dtm.history)
    with pytest.warns(UserWarning, match='strict_passion'): DTM(4).load_state_dict(state)


def test_ddp_reduce_gives_every_rank_the_same_beta():
    "Two 'ranks' see different halves; a SUM reduction makes both equal to one monitor that saw everything."
    g = torch.Generator().manual_seed(0)
    batches = [(torch.rand(2, 4, generator=g), torch.rand(2, 4, generator=g) > 0.3) for _ in range(8)]
    batches = [(gap, a | torch.tensor([True, False, False, False])) for gap, a in batches]
    whole, r0, r1 = DTM(4), DTM(4), DTM(4)
    for i, (gap, a) in enumerate(batches):
        whole.step(gap, a); (r0 if i % 2 else r1).step(gap, a)
    total = r0.epoch_stats_tensor() + r1.epoch_stats_tensor()
    def all_reduce(t): t.copy_(total)                                 # what torch.distributed.all_reduce does
    whole.end_epoch(); r0.end_epoch(reduce=all_reduce); r1.end_epoch(reduce=lambda t: total.clone())
    assert torch.allclose(r0.beta, whole.beta) and torch.allclose(r1.beta, whole.beta)
    assert len(STAT_ROWS) == r0.epoch_stats_tensor().shape[0]


class _StandIn(nn.Module):
    "Two conv encoders summed, hooks on their outputs (the `set_grad_scale` protocol)."
    def __init__(self):
        super().__init__()
        self.enc = nn.ModuleList([nn.Conv2d(1, 4, 3, padding=1) for _ in range(2)]); self.k = None
    def set_grad_scale(self, k): self.k = k
    def forward(self, x):
        outs = [e(x[:, m:m + 1]) for m, e in enumerate(self.enc)]
        if self.k is not None:
            for m, o in enumerate(outs): o.register_hook(lambda g, s=self.k[m]: g * s)
        return sum(outs)


def _encoder_grads(net, x, encoders):
    for p in net.parameters(): p.grad = None
    net(x).pow(2).sum().backward()
    return [torch.cat([p.grad.flatten() for p in e.parameters()]) for e in encoders]


def test_hook_scales_encoder_gradient_by_k_stand_in():
    torch.manual_seed(0)
    net, x = _StandIn().double(), torch.randn(2, 2, 8, 8, dtype=torch.float64)
    plain = _encoder_grads(net, x, net.enc)
    dtm = DTM(2); dtm.beta = torch.tensor([0.4, 1.5])
    dtm.apply_grad_scaling(net)
    scaled = _encoder_grads(net, x, net.enc)
    for m in range(2): assert torch.allclose(scaled[m], dtm.beta[m].double() * plain[m], rtol=1e-12, atol=0)
    DTM(2, grad_scaling=False).apply_grad_scaling(net)
    assert net.k is None


def test_hook_scales_encoder_gradient_by_k_real_network():
    import dmafnet.network as net_mod
    torch.manual_seed(0)
    net = net_mod.DMAFNet(4, 4, spatial_dims=2, base_width=2).double()
    x = torch.randn(2, 4, 32, 32, dtype=torch.float64)
    a = torch.tensor([[1, 1, 0, 1], [1, 1, 1, 1]]).bool()
    y = torch.randint(0, 4, (2, 32, 32))
    crit = DMAFCriterion(4, 4, net.feature_channels, 2, maa_heads=4).double()
    def grads():
        net.zero_grad(); crit.zero_grad()
        crit(net(x, a), y)[0].backward()
        return [torch.cat([p.grad.flatten() for p in e.parameters()]) for e in net.encoders]
    plain = grads()
    dtm = DTM(4); dtm.beta = torch.tensor([0.5, 1.2, 0.9, 1.3])
    dtm.apply_grad_scaling(net)
    scaled = grads()
    for m in range(4): assert torch.allclose(scaled[m], dtm.beta[m].double() * plain[m], rtol=1e-9, atol=1e-14)
    dtm.grad_scaling = False; dtm.apply_grad_scaling(net)
    assert all(torch.allclose(g, p) for g, p in zip(grads(), plain))


def test_apply_grad_scaling_needs_the_method():
    with pytest.raises(TypeError, match='set_grad_scale'): DTM(2).apply_grad_scaling(nn.Linear(2, 2))
    class Wrapped(nn.Module):
        def __init__(self): super().__init__(); self.module = _StandIn()
    w = Wrapped(); DTM(2).apply_grad_scaling(w)                       # a DDP-style wrapper is unwrapped
    assert torch.equal(w.module.k, torch.ones(2))


def test_criterion_computes_and_the_caller_records():
    "The criterion never changes the monitor; its parts carry the batch's statistics for the trainer to record."
    a = torch.tensor([[1, 1, 0, 0], [1, 0, 1, 1]]).bool()
    out = synthetic_output(a, requires_grad=False)
    crit = DMAFCriterion(4, 4, 16, 2, maa_heads=4)
    dtm = DTM(4)
    _, parts = crit(out, torch.randint(0, 4, (2, 32, 32)), dtm)
    assert dtm.epoch_stats_tensor().sum() == 0 and parts.dtm_stats.shape == (len(STAT_ROWS), 4)
    dtm.record(parts.dtm_stats)
    assert dtm.epoch_stats_tensor()[0].tolist() == [2., 1., 1., 1.]
    assert crit(out, torch.randint(0, 4, (2, 32, 32)))[1].dtm_stats is None     # without a DTM


@pytest.mark.parametrize('gap', ['proto', 'cca', 'maa', 'feature'])
def test_gap_choices(gap):
    a = torch.tensor([[1, 1, 0, 0], [1, 0, 1, 1]]).bool()
    out = synthetic_output(a, requires_grad=False)
    crit = DMAFCriterion(4, 4, 16, 2, maa_heads=4, lambda_cov=0, lambda_att=0, lambda_pro=0)
    total, parts = crit(out, torch.randint(0, 4, (2, 32, 32)), DTM(4, gap=gap))
    assert torch.isfinite(total) and parts['gap_flair'] > 0 and 'cca' not in parts
    with pytest.raises(ValueError, match='gap must be'): DTM(4, gap='kl')


def test_short_training_run_with_history():
    "A few epochs of the stand-in protocol: criterion + DTM + end_epoch(model=...)."
    import dmafnet.network as net_mod
    torch.manual_seed(0)
    net = net_mod.DMAFNet(4, 4, spatial_dims=2, base_width=2)
    crit = DMAFCriterion(4, 4, net.feature_channels, 2, maa_heads=4)
    dtm = DTM.from_masks(_mr2468_like())
    opt = torch.optim.AdamW([*net.parameters(), *crit.parameters()], lr=1e-3)
    dtm.apply_grad_scaling(net)
    masks = torch.tensor([[1, 1, 1, 1], [0, 1, 1, 0], [0, 0, 1, 0], [1, 0, 1, 1]]).bool()
    for epoch in range(2):
        for i in range(2):
            a = masks[[2 * i, 2 * i + 1]]
            x, y = torch.randn(2, 4, 32, 32), torch.randint(0, 4, (2, 32, 32))
            total, parts = crit(net(x, a), y, dtm)
            opt.zero_grad(); total.backward(); opt.step()
            assert torch.isfinite(total)
        dtm.end_epoch(model=net)
    h = dtm.history
    assert len(h) == 8 and set(h.columns) >= {'epoch', 'modality', 'gap', 'rp', 'beta', 'k', 'gate_rate'}
    assert torch.allclose(net._grad_scale, dtm.beta)
