"Losses (SPEC §3): distillation properties, per-sample/per-modality normalisation, the criterion in 2D and 3D."
import math
import pytest, torch
import torch.nn.functional as F
from dmafnet.core import NetOutput
from dmafnet.losses import (one_hot, weighted_ce, soft_dice, segmentation_loss, label_segmentation_loss, covariance, CovarianceAlignment,
                            AttentionAlignment, soft_memberships, prototype_loss, kl_distillation, feature_distance, DMAFCriterion)
from dmafnet.testing import synthetic_output
from dmafnet.dtm import DTM

AVAIL = {'single': [[1, 0, 0, 0], [0, 0, 0, 1]],
         'mixed': [[1, 0, 1, 0], [0, 1, 1, 1], [0, 0, 1, 0]],
         'all': [[1, 1, 1, 1], [1, 1, 1, 1]]}


def _pairs(P=3, C=16, size=(4, 4), seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.randn(P, C, *size, generator=g).requires_grad_()
    s = torch.randn(P, C, *size, generator=g).requires_grad_()
    return s, t


def _memberships(P, size, K=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    lab = torch.randint(0, K, (P, *[4 * n for n in size]), generator=g)
    return soft_memberships(one_hot(lab, K), size)


DISTILL = {
    'cca': lambda s, t: CovarianceAlignment(1, s.shape[1])(s, t, torch.zeros(len(s), dtype=torch.long)),
    'cca_corr': lambda s, t: CovarianceAlignment(1, s.shape[1], 'correlation')(s, t, torch.zeros(len(s), dtype=torch.long)),
    'maa': lambda s, t: AttentionAlignment(s.shape[1], 4)(s, t),
    'maa_local': lambda s, t: AttentionAlignment(s.shape[1], 4, mask='local')(s, t),
    'proto': lambda s, t: prototype_loss(s, t, _memberships(len(s), s.shape[2:])),
    'proto_cosine': lambda s, t: prototype_loss(s, t, _memberships(len(s), s.shape[2:]), 'cosine'),
    'feature': feature_distance,
}


@pytest.mark.parametrize('name', list(DISTILL))
@pytest.mark.parametrize('size', [(4, 4), (2, 3, 4)])
def test_distillation_zero_positive_no_teacher_grad(name, size):
    fn = DISTILL[name]
    s, t = _pairs(size=size)
    zero = fn(t.detach().clone(), t)
    assert torch.allclose(zero, torch.zeros_like(zero), atol=1e-6), zero
    loss = fn(s, t)
    assert loss.shape == (len(s),) and (loss > 0).all()
    loss.sum().backward()
    assert t.grad is None
    assert s.grad is not None and s.grad.abs().sum() > 0


def test_kl_zero_positive_no_teacher_grad():
    s, t = _pairs(C=4, size=(8, 8))
    assert torch.allclose(kl_distillation(t.detach(), t), torch.zeros(3), atol=1e-6)
    loss = kl_distillation(s, t); assert (loss > 0).all()
    loss.sum().backward(); assert t.grad is None and s.grad.abs().sum() > 0


@pytest.mark.parametrize('mode', ['covariance', 'correlation'])
def test_cca_invariant_to_constant(mode):
    s, t = _pairs()
    cca = CovarianceAlignment(2, 16, mode)
    with torch.no_grad(): cca.weight.add_(0.1 * torch.randn_like(cca.weight))   # a trained, non-identity map
    idx = torch.tensor([0, 1, 0])
    ref = cca(s, t, idx)
    c = torch.randn(1, 16, 1, 1)                                             # a per-channel constant
    assert torch.allclose(cca(s + c, t, idx), ref, rtol=1e-4, atol=1e-6)
    assert torch.allclose(cca(s, t + 7., idx), ref, rtol=1e-4, atol=1e-6)


def test_covariance_matches_numpy():
    x = torch.randn(2, 5, 30, dtype=torch.float64)
    import numpy as np
    for p in range(2):
        assert np.allclose(covariance(x)[p].numpy(), np.cov(x[p].numpy(), bias=True))
        assert np.allclose(covariance(x, 'correlation', eps=0)[p].numpy(), np.corrcoef(x[p].numpy()))


@pytest.mark.parametrize('mode', ['mse', 'cosine'])
def test_prototype_ignores_absent_classes(mode):
    s, t = _pairs(P=2, size=(4, 4))
    lab = torch.randint(0, 2, (2, 16, 16)); lab[0, :8] = 3              # class 2 absent everywhere, 3 only in sample 0
    w = soft_memberships(one_hot(lab, 4), (4, 4))
    loss = prototype_loss(s, t, w, mode)
    assert torch.isfinite(loss).all()
    assert torch.allclose(loss, prototype_loss(s, t, w[:, [0, 1, 3]], mode))   # not averaged in as a zero
    assert torch.allclose(loss[1:], prototype_loss(s[1:], t[1:], w[1:, :2], mode))
    # the loss is the mean over the classes each sample has: written out here for sample 0 (classes 0, 1, 3)
    if mode == 'mse':
        proto = lambda f, k: (f[0].flatten(1) * w[0, k].flatten()).sum(1) / w[0, k].sum()
        by_hand = torch.stack([(proto(s, k) - proto(t, k)).pow(2).mean() for k in (0, 1, 3)]).mean()
        assert torch.allclose(loss[0], by_hand.to(loss.dtype))
    # an absent class counts once it has membership: the same features, class 2 given one cell of sample 0
    w2 = w.clone(); w2[0, :, 0, 0] = 0; w2[0, 2, 0, 0] = 1
    assert not torch.allclose(prototype_loss(s, t, w2, mode)[0], loss[0])


def test_prototype_memberships_are_soft():
    lab = torch.zeros(1, 8, 8, dtype=torch.long); lab[0, :2, :2] = 1     # a quarter of one 4×4 cell
    w = soft_memberships(one_hot(lab, 2), (2, 2))
    assert torch.allclose(w[0, 1], torch.tensor([[0.25, 0.], [0., 0.]]))


def test_segmentation_matches_rfnet_formula():
    "Batch of 1: our per-sample loss equals RFNet/PASSION's loop over classes."
    g = torch.Generator().manual_seed(0)
    probs = torch.randn(1, 4, 6, 6, 6, generator=g).softmax(1)
    y = one_hot(torch.randint(0, 4, (1, 6, 6, 6), generator=g), 4)
    ce, dice = 0., 0.
    for i in range(4):
        w = 1. - y[:, i].sum() / y.sum()
        ce = ce + (-w * y[:, i] * probs[:, i].clamp(0.005, 1).log()).mean()
        dice = dice + 2 * (probs[:, i] * y[:, i]).sum() / (probs[:, i].sum() + y[:, i].sum() + 1e-7)
    assert torch.allclose(weighted_ce(probs, y), ce.reshape(1), rtol=1e-5)
    assert torch.allclose(soft_dice(probs, y), (1 - dice / 4).reshape(1), rtol=1e-5)
    assert torch.allclose(label_segmentation_loss(probs, y.argmax(1)), (ce + 1 - dice / 4).reshape(1), rtol=1e-5)


@pytest.mark.parametrize('spatial', [(5, 7), (4, 5, 6)])
def test_label_form_equals_one_hot_form(spatial):
    g = torch.Generator().manual_seed(1)
    probs = torch.randn(3, 4, *spatial, generator=g, dtype=torch.float64).softmax(1).requires_grad_()
    label = torch.randint(0, 3, (3, *spatial), generator=g)          # class 3 absent
    probs2 = probs.detach().clone().requires_grad_()
    a, b = label_segmentation_loss(probs, label), segmentation_loss(probs2, one_hot(label, 4).double())
    assert torch.allclose(a, b)
    a.sum().backward(); b.sum().backward()
    assert torch.allclose(probs.grad, probs2.grad)


def _criterion(spatial_dims, **kw):
    return DMAFCriterion(4, 4, 16, spatial_dims, maa_heads=4, **kw)


@pytest.mark.parametrize('kind', list(AVAIL))
@pytest.mark.parametrize('spatial_dims', [2, 3])
@pytest.mark.parametrize('with_dtm', [False, True])
def test_total_finite(kind, spatial_dims, with_dtm):
    a = torch.tensor(AVAIL[kind]).bool()
    size = (32, 32) if spatial_dims == 2 else (16, 16, 16)
    out = synthetic_output(a, size=size, channels=16, generator=torch.Generator().manual_seed(1))
    label = torch.randint(0, 4, (len(a), *size))
    crit = _criterion(spatial_dims, lambda_kl=0.1)
    total, parts = crit(out, label, DTM(4) if with_dtm else None)
    assert total.ndim == 0 and torch.isfinite(total)
    assert all(math.isfinite(v) for v in parts.values())
    assert math.isclose(parts['total'], sum(v for k, v in parts.items() if k in
                        ('seg', 'deep', 'unimodal', 'cca', 'maa', 'proto', 'kl')), rel_tol=1e-5)
    total.backward()
    assert out.fused_features.grad is None
    assert out.modality_logits.grad[~a].abs().sum() == 0 and out.modality_features.grad[~a].abs().sum() == 0
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in crit.parameters())


def test_missing_contributes_nothing():
    a = torch.tensor(AVAIL['mixed']).bool()
    crit = _criterion(2, lambda_kl=0.1).eval()
    label = torch.randint(0, 4, (3, 32, 32))
    ref = synthetic_output(a, requires_grad=False, generator=torch.Generator().manual_seed(2))
    bad = synthetic_output(a, requires_grad=False, generator=torch.Generator().manual_seed(2))
    bad.modality_logits[~a] = float('nan'); bad.modality_features[~a] = float('inf')
    dtm = DTM(4)
    t_ref, p_ref = crit(ref, label, dtm)
    t_bad, p_bad = crit(bad, label, dtm)
    assert torch.equal(t_ref, t_bad) and p_ref == p_bad


def test_per_sample_normalisation_and_sum_over_modalities():
    "total = mean over samples; unimodal = sum over the sample's available modalities."
    a = torch.tensor(AVAIL['mixed']).bool()
    crit = _criterion(2, lambda_cov=0, lambda_att=0, lambda_pro=0).eval()
    out = synthetic_output(a, requires_grad=False, generator=torch.Generator().manual_seed(3))
    label = torch.randint(0, 4, (3, 32, 32))
    _, parts = crit(out, label)
    y = one_hot(label, 4)
    uni = [sum(segmentation_loss(out.modality_logits[b, m][None].softmax(1), y[b:b + 1]) for m in range(4) if a[b, m])
           for b in range(3)]
    assert math.isclose(parts['unimodal'], torch.cat(uni).mean().item(), rel_tol=1e-5)
    deep = sum(2 ** -(k + 1) * segmentation_loss(F.interpolate(d.softmax(1), size=(32, 32), mode='bilinear'), y)
               for k, d in enumerate(out.deep_logits)).mean()
    assert math.isclose(parts['deep'], deep.item(), rel_tol=1e-5)


def test_dtm_weights_enter_the_terms():
    "With a DTM, unimodal = Σ ω g β seg, relation terms ω β, prototype ω g."
    a = torch.tensor(AVAIL['all']).bool()
    out = synthetic_output(a, requires_grad=False, generator=torch.Generator().manual_seed(4))
    label = torch.randint(0, 4, (2, 32, 32))
    crit = _criterion(2).eval()
    _, plain = crit(out, label)
    dtm = DTM(4, omega=[2., 2., 2., 2.], grad_scaling=False, use_gate=False)
    _, weighted = crit(out, label, dtm)
    for k in ('unimodal', 'cca', 'maa', 'proto'):
        assert math.isclose(weighted[k], 2 * plain[k], rel_tol=1e-5), k
    assert math.isclose(weighted['seg'], plain['seg'])


def test_strict_passion_gates_single_modality_samples():
    a = torch.tensor(AVAIL['single']).bool()
    out = synthetic_output(a, requires_grad=False, generator=torch.Generator().manual_seed(5))
    out.fused_features = out.modality_features.sum(1)       # one modality: the teacher is the student
    label = torch.randint(0, 4, (2, 32, 32))
    crit = _criterion(2).eval()
    _, default = crit(out, label, DTM(4))
    _, strict = crit(out, label, DTM(4, strict_passion=True))
    assert default['unimodal'] > 0 and strict['unimodal'] == 0
    assert default['cca'] == 0 and default['maa'] == 0 and default['proto'] == 0


def test_errors_are_clear():
    a = torch.tensor(AVAIL['all']).bool()
    out = synthetic_output(a, requires_grad=False)
    crit = _criterion(2)
    with pytest.raises(ValueError, match='label must be'): crit(out, torch.zeros(2, 16, 16, dtype=torch.long))
    with pytest.raises(ValueError, match='feature_channels=8'):
        DMAFCriterion(4, 4, 8, 2, maa_heads=4)(out, torch.zeros(2, 32, 32, dtype=torch.long))
    with pytest.raises(ValueError, match=r'\(3D\)'): _criterion(3)(out, torch.zeros(2, 32, 32, dtype=torch.long))
    with pytest.raises(ValueError, match='needs NetOutput.modality_features'):
        crit(NetOutput(logits=out.logits, availability=a), torch.zeros(2, 32, 32, dtype=torch.long), DTM(4))


def test_label_with_channel_axis():
    a = torch.tensor(AVAIL['all']).bool()
    out = synthetic_output(a, requires_grad=False)
    crit = _criterion(2).eval()
    label = torch.randint(0, 4, (2, 32, 32))
    assert torch.equal(crit(out, label)[0], crit(out, label[:, None])[0])


def test_with_real_network():
    import dmafnet.network as net_mod
    torch.manual_seed(0)
    net = net_mod.DMAFNet(4, 4, spatial_dims=2, base_width=2)
    crit = DMAFCriterion(4, 4, net.feature_channels, 2, maa_heads=4, lambda_kl=0.1)
    dtm = DTM(4)
    opt = torch.optim.AdamW([*net.parameters(), *crit.parameters()], lr=1e-3)
    a = torch.tensor([[1, 0, 0, 0], [1, 1, 1, 1], [0, 1, 0, 1]]).bool()
    x, y = torch.randn(3, 4, 32, 32), torch.randint(0, 4, (3, 32, 32))
    dtm.apply_grad_scaling(net)
    out = net(x, a)
    total, parts = crit(out, y, dtm)
    assert torch.isfinite(total)
    assert {'seg', 'deep', 'unimodal', 'cca', 'maa', 'proto', 'kl', 'gap_t1ce'} <= set(parts)
    opt.zero_grad(); total.backward()
    assert all(p.grad is not None for p in crit.parameters())
    assert next(net.encoders[2].parameters()).grad.abs().sum() > 0     # t1 is used by sample 1
    opt.step()
    dtm.end_epoch(model=net)
    assert torch.allclose(net._grad_scale, dtm.beta)


def test_half_precision_inputs_under_autocast():
    "AMP: half-precision outputs are upcast and the loss is computed outside autocast, in float32."
    a = torch.tensor(AVAIL['mixed']).bool()
    out = synthetic_output(a, requires_grad=False, generator=torch.Generator().manual_seed(6))
    ref, _ = _criterion(2).eval()(out, torch.zeros(3, 32, 32, dtype=torch.long))
    for f in ('logits', 'modality_logits', 'modality_features', 'fused_features'):
        setattr(out, f, getattr(out, f).bfloat16())
    out.deep_logits = [d.bfloat16() for d in out.deep_logits]
    crit = _criterion(2).eval()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        total, _ = crit(out, torch.zeros(3, 32, 32, dtype=torch.long))
        with_dtm, _ = crit(out, torch.zeros(3, 32, 32, dtype=torch.long), DTM(4))
    assert total.dtype == torch.float32 and torch.isfinite(total) and torch.isfinite(with_dtm)
    assert math.isclose(total.item(), ref.item(), rel_tol=0.02)
