"""Training-step time with the segmentation losses alone vs the full DMAF-Net criterion + DTM.

    .venv/bin/python benchmarks/bench_criterion.py                 # 3D 64³, batch 1, all four modalities, CPU
    .venv/bin/python benchmarks/bench_criterion.py --size 32 --steps 3 --warmup 1   # smoke

Writes benchmarks/criterion.md and benchmarks/criterion.json. One training step = forward + loss + backward +
AdamW step, over the network's and the criterion's parameters. The configurations run round-robin (A, B, C, A, B,
C, …) so drifting load on a shared machine hits them alike; the median step time is reported.

- `seg_fused`: segmentation loss of the fused prediction only (reference; the network still runs its shared decoder);
- `seg`: SPEC §3's segmentation terms — fused, deep supervision and every available uni-modal prediction (the
  "segmentation loss alone" baseline of the ≤ 25 % target);
- `full`: `DMAFCriterion` defaults (CCA, MAA, prototype at λ = 0.1) + `DTM` (prototype gap, ω, gates, β weights
  and k = β encoder-gradient hooks).
"""
from __future__ import annotations
import argparse, os, platform, statistics, sys, time
from datetime import datetime, timezone
from pathlib import Path
import torch, torch.nn as nn, torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT)); sys.path.insert(0, str(ROOT / 'benchmarks'))
from provenance import git_commit, machine, write_json, write_text
from dmafnet.core import NetOutput
from dmafnet.losses import DMAFCriterion, segmentation_loss, one_hot
from dmafnet.dtm import DTM


class StandIn(nn.Module):
    "Smoke-test stand-in with DMAFNet's interface (encoders to /16, mean fusion, shared and fusion decoders)."
    def __init__(self, n_modalities=4, n_classes=4, spatial_dims=3, base_width=8):
        super().__init__()
        conv = (nn.Conv2d, nn.Conv3d)[spatial_dims - 2]
        self.n_modalities, self.feature_channels, self.sd = n_modalities, 16 * base_width, spatial_dims
        ch = [base_width * 2 ** l for l in range(5)]
        self.encoders = nn.ModuleList([nn.ModuleList([conv(1 if l == 0 else ch[l - 1], ch[l], 3, 1 if l == 0 else 2, 1)
                                                      for l in range(5)]) for _ in range(n_modalities)])
        self.fuse_head = nn.ModuleList([conv(c, n_classes, 1) for c in ch])
        self.shared_head = conv(ch[-1], n_classes, 1)
        self._k = None

    def set_grad_scale(self, k): self._k = None if k is None else torch.as_tensor(k, dtype=torch.float32)

    def forward(self, image, availability):
        a = availability.bool(); B, M = a.shape
        view = lambda x: a.view(B, M, *[1] * (x.ndim - 2)).to(x.dtype)
        levels = []
        for m, enc in enumerate(self.encoders):
            x, feats = image[:, m:m + 1], []
            for c in enc: x = F.leaky_relu(c(x), 0.2); feats.append(x)
            levels.append(feats)
        pyr = [torch.stack([levels[m][l] for m in range(M)], 1) for l in range(5)]
        if self._k is not None:
            for p in pyr: p.register_hook(lambda g, k=self._k: g * k.to(g).view(1, -1, *[1] * (g.ndim - 2)))
        pyr = [p * view(p) for p in pyr]
        fused = [p.sum(1) / a.sum(1).view(B, *[1] * (p.ndim - 2)) for p in pyr]
        mode = ('bilinear', 'trilinear')[self.sd - 2]
        up = lambda x: F.interpolate(x, size=image.shape[2:], mode=mode, align_corners=False)
        logits = up(sum(F.interpolate(h(f), size=fused[0].shape[2:], mode=mode) for h, f in zip(self.fuse_head, fused)))
        deep = [h(f) for h, f in zip(self.fuse_head[1:], fused[1:])]
        b, m = a.nonzero(as_tuple=True)
        zm = up(self.shared_head(pyr[-1][b, m]))
        z = zm.new_zeros(B, M, *zm.shape[1:]).index_put((b, m), zm)
        return NetOutput(logits=logits, deep_logits=deep, modality_logits=z, modality_features=pyr[-1],
                         fused_features=fused[-1], availability=a)


def build_model(args):
    if not args.stand_in:
        try:
            from dmafnet.network import DMAFNet
            return DMAFNet(4, 4, spatial_dims=args.dims, base_width=args.base_width), 'DMAFNet'
        except ImportError as e:
            sys.exit(f"dmafnet.network.DMAFNet not importable ({e}); use --stand-in for a smoke run")
    return StandIn(4, 4, args.dims, args.base_width), 'StandIn (smoke only; not DMAFNet)'


def sync(device):
    if device.type == 'cuda': torch.cuda.synchronize(device)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--size', type=int, default=64, help='patch side (multiple of 16)')
    p.add_argument('--dims', type=int, default=3, choices=[2, 3])
    p.add_argument('--batch', type=int, default=1)
    p.add_argument('--base-width', type=int, default=8)
    p.add_argument('--availability', default='1111', help='one mask for every sample, channel order flair,t1ce,t1,t2')
    p.add_argument('--steps', type=int, default=8, help='timed steps per configuration')
    p.add_argument('--warmup', type=int, default=2, help='untimed steps per configuration first')
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--device', default='cpu')
    p.add_argument('--stand-in', action='store_true', help='use a small stand-in network (smoke test)')
    p.add_argument('--out', default=str(ROOT / 'benchmarks' / 'criterion'), help='output stem (.md and .json)')
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads); torch.manual_seed(0)
    device = torch.device(args.device)
    net, net_name = build_model(args)
    net.to(device)
    a = torch.tensor([[c == '1' for c in args.availability]] * args.batch, device=device)
    size = (args.size,) * args.dims
    x = torch.randn(args.batch, 4, *size, device=device) * a.view(args.batch, 4, *[1] * args.dims)
    y = torch.randint(0, 4, (args.batch, *size), device=device)

    C, sd = net.feature_channels, args.dims
    seg_only = DMAFCriterion(4, 4, C, sd, lambda_cov=0, lambda_att=0, lambda_pro=0).to(device)
    full = DMAFCriterion(4, 4, C, sd).to(device)
    dtm = DTM(4)
    configs = {
        'seg_fused': lambda out: (segmentation_loss(out.logits.softmax(1), one_hot(y, 4)).mean(), seg_only),
        'seg': lambda out: (seg_only(out, y)[0], seg_only),
        'full': lambda out: (full(out, y, dtm)[0], full),
    }
    opts = {k: torch.optim.AdamW([*net.parameters(), *(full.parameters() if k == 'full' else [])], lr=1e-5,
                                 amsgrad=True, weight_decay=1e-4) for k in configs}
    times = {k: {'step': [], 'forward': [], 'loss': [], 'backward_step': [], 'step_cpu': []} for k in configs}

    def step(name, record):
        net.set_grad_scale(dtm.k if name == 'full' else None)
        opt = opts[name]; opt.zero_grad(set_to_none=True)
        sync(device); t0, c0 = time.perf_counter(), time.process_time()
        out = net(x, a); sync(device); t1 = time.perf_counter()
        loss, _ = configs[name](out); sync(device); t2 = time.perf_counter()
        loss.backward(); opt.step(); sync(device); t3, c3 = time.perf_counter(), time.process_time()
        if record:
            for k, v in zip(('step', 'forward', 'loss', 'backward_step', 'step_cpu'),
                            (t3 - t0, t1 - t0, t2 - t1, t3 - t2, c3 - c0)):
                times[name][k].append(v)

    for i in range(args.warmup + args.steps):
        for name in configs: step(name, i >= args.warmup)
    dtm.end_epoch()
    net.set_grad_scale(None)

    # The criterion alone: forward + backward on leaf tensors shaped like the network's output. Short and
    # repeatable, so its minimum is a load-robust estimate of what the extra terms cost.
    with torch.no_grad(): ref = net(x, a)
    leaf = lambda t: t.detach().clone().requires_grad_()
    def leaves():
        return NetOutput(logits=leaf(ref.logits), deep_logits=[leaf(d) for d in ref.deep_logits],
                         modality_logits=leaf(ref.modality_logits), modality_features=leaf(ref.modality_features),
                         fused_features=leaf(ref.fused_features), availability=a)
    alone_cfg = {'seg': lambda o: seg_only(o, y)[0], 'full': lambda o: full(o, y, dtm)[0]}
    alone = {k: [] for k in alone_cfg}
    for i in range(args.warmup + 3 * args.steps):
        for name, fn in alone_cfg.items():
            o = leaves(); sync(device); t0 = time.perf_counter()
            fn(o).backward(); sync(device)
            if i >= args.warmup: alone[name].append(time.perf_counter() - t0)

    med = {k: {q: statistics.median(v) for q, v in t.items()} for k, t in times.items()}
    mins = {k: {q: min(v) for q, v in t.items()} for k, t in times.items()}
    overhead = med['full']['step'] / med['seg']['step'] - 1
    overhead_min = mins['full']['step'] / mins['seg']['step'] - 1
    overhead_fused = med['full']['step'] / med['seg_fused']['step'] - 1
    overhead_cpu = med['full']['step_cpu'] / med['seg']['step_cpu'] - 1
    extra = min(alone['full']) - min(alone['seg'])
    overhead_alone = extra / mins['seg']['step']
    info = dict(date=datetime.now(timezone.utc).isoformat(timespec='seconds'), commit=git_commit(), machine=machine(),
                python=platform.python_version(), torch=torch.__version__, threads=args.threads, device=str(device),
                load_average=os.getloadavg() if hasattr(os, 'getloadavg') else None,
                network=net_name, params_network=sum(p.numel() for p in net.parameters()),
                params_criterion=sum(p.numel() for p in full.parameters()),
                input=f"{args.batch}×4×{'×'.join(map(str, size))}", availability=args.availability,
                steps=args.steps, warmup=args.warmup)
    result = dict(info=info, median_s=med, min_s=mins, all_s=times, criterion_alone_s=alone,
                  overhead_full_vs_seg=overhead, overhead_full_vs_seg_min=overhead_min,
                  overhead_full_vs_seg_fused=overhead_fused, overhead_full_vs_seg_cpu_time=overhead_cpu,
                  overhead_criterion_alone=overhead_alone, target=0.25)
    out = Path(args.out)
    write_json(out.with_suffix('.json'), result)
    rows = '\n'.join(f"| `{k}` | {m['step']:.3f} | {mins[k]['step']:.3f} | {m['forward']:.3f} | {m['loss']:.3f} | "
                     f"{m['backward_step']:.3f} | {m['step_cpu']:.3f} |" for k, m in med.items())
    alone_rows = '\n'.join(f"| `{k}` | {statistics.median(v) * 1e3:.1f} | {min(v) * 1e3:.1f} |" for k, v in alone.items())
    verdict = 'within' if overhead <= 0.25 else 'OVER'
    md = f"""# Criterion overhead

Training step (forward + loss + backward + AdamW step) with the segmentation losses alone vs the full DMAF-Net
criterion (CCA, MAA, prototype, λ = 0.1) with DTM (prototype gap, ω/g/β weights, k = β gradient hooks).
Median of {args.steps} steps after {args.warmup} warm-up steps per configuration, run round-robin.
Generated by `benchmarks/bench_criterion.py {' '.join(argv if argv is not None else sys.argv[1:])}`.

| configuration | step, median (s) | step, min (s) | network forward (s) | loss (s) | backward + step (s) | step, process CPU time (s) |
|---|---|---|---|---|---|---|
{rows}

- `seg_fused`: segmentation of the fused prediction only (reference).
- `seg`: SPEC §3 segmentation terms (fused + deep supervision + uni-modal): the baseline.
- `full`: everything + DTM.

**Overhead of `full` over `seg`: {overhead:+.1%}** (medians; {verdict} the ≤ 25 % target); from the minima
{overhead_min:+.1%}; in process CPU time {overhead_cpu:+.1%}; over `seg_fused`: {overhead_fused:+.1%}.

The criterion alone (forward + backward on leaf tensors shaped like this network's output, {3 * args.steps} repeats;
the gradient hooks, a multiply per pyramid level inside the network's backward, are not in it):

| criterion | median (ms) | min (ms) |
|---|---|---|
{alone_rows}

Extra cost of the full criterion + DTM over the segmentation terms: {extra * 1e3:.1f} ms, i.e. **{overhead_alone:+.1%}**
of the fastest `seg` step — the load-robust estimate when the machine is shared.

| | |
|---|---|
""" + '\n'.join(f"| {k} | {v} |" for k, v in info.items()) + '\n'
    write_text(out.with_suffix('.md'), md)
    print(md)
    return result


if __name__ == '__main__':
    main()
