"""Integration tests of the training engine: exact resume after SIGKILL, damaged checkpoints, non-finite losses,
configuration errors, DDP (gloo, 2 processes), the papermill run notebook, the CLI, and a CUDA smoke test."""
import json, os, re, signal, subprocess, sys, textwrap
from pathlib import Path
import numpy as np, pandas as pd, pytest, torch
from conftest import ROOT

BIN = Path(sys.executable).parent
ENV = dict(os.environ, PYTHONWARNINGS='ignore', OMP_NUM_THREADS='1')

@pytest.fixture(scope='module', autouse=True)
def one_thread():
    "Tiny models on a shared CPU: one thread (two threads were measured 50× slower on tiny ops under load)."
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

@pytest.fixture(scope='module')
def cache(tmp_path_factory):
    "A tiny preprocessed phantom: 6 cases at 4 mm (50×59×48), split 3/1/2."
    from dmafnet.phantom import make_phantom
    from dmafnet.preprocess import preprocess_dataset
    d = tmp_path_factory.mktemp('phantom')
    make_phantom(d/'raw', n_cases=6, seed=0, spacing=4.0)
    preprocess_dataset(d/'raw', d/'cache', verbose=False)
    return d/'cache'

def tiny(cache, out, **changes):
    "The phantom preset at test size: 2D, base width 4, 32² patches, 2 epochs of 4 steps of 2 slices."
    from dmafnet.config import preset
    kw = dict(data=str(cache), out=str(out), base_width=4, patch_size=[32, 32], batch_size=2, epochs=2,
              steps_per_epoch=4, val_every=1, val_cases=1, val_subsets=[14], progress=False, deterministic=True)
    kw.update(changes)
    return preset('phantom', **kw)

RUN = textwrap.dedent('''
    import json, os, signal, sys, torch
    torch.set_num_threads(1)
    from dmafnet.config import TrainConfig
    from dmafnet.train import train
    cfg = TrainConfig.from_dict(json.loads(sys.argv[1]))
    kill_at, resume = int(sys.argv[2]), sys.argv[3] == '1'
    def killer(event, trainer):  # SIGKILL: no cleanup, no flush, as a pre-empted node
        if event == 'step' and trainer.global_step == kill_at: os.kill(os.getpid(), signal.SIGKILL)
    def keep(event, trainer):    # under DDP, each rank writes what it ends with
        if event == 'end': torch.save({'model': trainer.model.state_dict(), 'beta': trainer.dtm.beta.cpu()},
                                      os.path.join(trainer.cfg.out, f'rank{trainer.rank}.pt'))
    train(cfg, resume=resume, callbacks=[killer, keep])
''')

def run(cfg, kill_at=0, resume=False, timeout=300):
    return subprocess.run([sys.executable, '-c', RUN, json.dumps(cfg.to_dict()), str(kill_at), str(int(resume))],
                          env=ENV, capture_output=True, text=True, timeout=timeout)

def checkpoint(path):
    return torch.load(path, weights_only=True)

def same_state(a, b):
    "True when two (nested) state dicts hold equal tensors and values."
    if isinstance(a, dict): return a.keys() == b.keys() and all(same_state(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)): return len(a) == len(b) and all(same_state(x, y) for x, y in zip(a, b))
    if torch.is_tensor(a): return torch.equal(a, b)
    return a == b or (isinstance(a, float) and np.isnan(a) and np.isnan(b))

def test_resume_after_sigkill_is_exact(cache, tmp_path):
    "Killed mid-epoch (SIGKILL) and resumed, a run ends with the same weights, optimiser, DTM and log."
    a = tiny(cache, tmp_path/'a', checkpoint_every=3)
    b = tiny(cache, tmp_path/'b', checkpoint_every=3, workers=1)  # workers do not change the samples
    r = run(a); assert r.returncode == 0, r.stderr[-3000:]
    r = run(b, kill_at=7)                                         # last checkpoint: epoch 2, step 2
    assert r.returncode == -signal.SIGKILL, r.stderr[-3000:]
    mid = checkpoint(tmp_path/'b'/'checkpoints'/'last.pt')
    assert (mid['epoch'], mid['step']) == (1, 2)
    r = run(b, resume=True); assert r.returncode == 0, r.stderr[-3000:]
    sa, sb = (checkpoint(tmp_path/x/'checkpoints'/'last.pt') for x in 'ab')
    for key in ('model', 'criterion', 'optimiser', 'scheduler', 'dtm'):
        assert same_state(sa[key], sb[key]), key
    assert (sb['epoch'], sb['step'], sb['global_step']) == (2, 0, 8)
    la, lb = ([json.loads(l) for l in open(tmp_path/x/'log.jsonl')] for x in 'ab')
    assert len(la) == len(lb) == 2
    volatile = ('time_s', 'steps_per_s', 'cpu_peak_gb')
    assert [{k: v for k, v in row.items() if k not in volatile} for row in la] == \
           [{k: v for k, v in row.items() if k not in volatile} for row in lb]

def test_damaged_checkpoint_falls_back(cache, tmp_path):
    "A truncated last.pt is reported and last.prev.pt (one epoch earlier) is used to resume."
    from dmafnet.train import Trainer, train
    cfg = tiny(cache, tmp_path, steps_per_epoch=2, val_every=0)
    train(cfg)
    last = tmp_path/'checkpoints'/'last.pt'
    last.write_bytes(last.read_bytes()[:last.stat().st_size // 3])
    with pytest.warns(UserWarning, match='damaged'):
        trainer = Trainer(cfg.update(epochs=3), resume=True)
    assert (trainer.epoch, trainer.step) == (1, 0)
    trainer.fit()
    assert checkpoint(last)['epoch'] == 3
    assert [json.loads(l)['epoch'] for l in open(tmp_path/'log.jsonl')] == [1, 2, 3]

def test_second_run_on_the_same_folder_refuses(cache, tmp_path, capsys):
    "A folder held by a live process is refused, naming it; a killed run's lock is taken over; the lock goes with the run, also on errors."
    from dmafnet.train import RunFolderBusy, Trainer, train, train_cli
    lock = tmp_path/'train.lock'
    hold = 'import sys, time; from dmafnet.train import RunLock; l = RunLock(sys.argv[1]); print("held", flush=True); time.sleep(120)'
    first = subprocess.Popen([sys.executable, '-c', hold, str(tmp_path)], stdout=subprocess.PIPE, text=True, env=ENV)
    try:
        assert first.stdout.readline().strip() == 'held'
        with pytest.raises(RunFolderBusy, match=f'another training run uses this folder: process {first.pid} on '):
            train(tiny(cache, tmp_path))
        with pytest.raises(SystemExit) as e: train_cli(['--data', str(cache), '--out', str(tmp_path), '--set', 'progress=false'])
        lines = [l for l in capsys.readouterr().err.splitlines() if l.startswith('dmafnet-train')]
        assert e.value.code == 2 and len(lines) == 1 and f'process {first.pid} on' in lines[0] and '--out' in lines[0]
        assert json.loads(lock.read_text())['pid'] == first.pid and not (tmp_path/'checkpoints').exists()
    finally: first.kill(); first.wait()                                  # SIGKILL: its lock stays behind
    cfg = tiny(cache, tmp_path, epochs=1, steps_per_epoch=1, val_every=0)
    with pytest.warns(UserWarning, match=f'process {first.pid} on .*no longer running'): trainer = Trainer(cfg)
    assert json.loads(lock.read_text())['pid'] == os.getpid()
    def boom(event, trainer): raise RuntimeError('boom')
    trainer.callbacks.append(boom)
    with pytest.raises(RuntimeError, match='boom'): trainer.fit()
    assert not lock.exists()                                             # released on an error in fit
    with pytest.raises(ValueError, match="'patch_size'"): train(tiny(cache, tmp_path/'p', patch_size=[64, 64]))
    assert not (tmp_path/'p'/'train.lock').exists()                      # and on one while setting up

def test_disk_full_while_checkpointing(cache, tmp_path, monkeypatch, capsys):
    "ENOSPC while last.pt is written: the one before stays intact, no half file, the run stops saying so; --resume goes on."
    import errno
    from dmafnet.checkpoint import load_checkpoint
    from dmafnet.train import CheckpointError, train, train_cli
    cfg = tiny(cache, tmp_path, epochs=1, steps_per_epoch=2, val_every=0)
    train(cfg)
    ck = tmp_path/'checkpoints'; before = (ck/'last.pt').read_bytes()
    save = torch.save
    def full(obj, f, *args, **kw):                                       # part of the file written, then no space
        f.write(b'PK\x03\x04' + bytes(1000)); raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(torch, 'save', full)
    with pytest.raises(CheckpointError) as e: train(cfg.update(epochs=2), resume=True)
    msg = str(e.value)
    assert f"{ck/'last.pt'} not written: the disk is full" in msg and '--resume' in msg
    assert f"the last good checkpoint is {ck/'last.pt'} (after epoch 1)" in msg
    assert (ck/'last.pt').read_bytes() == before and not (ck/'last.pt.tmp').exists()
    assert load_checkpoint(ck/'last.pt', fallback=False)['epoch'] == 1 and not (tmp_path/'train.lock').exists()
    with pytest.raises(SystemExit) as e: train_cli(['--out', str(tmp_path), '--resume', '--epochs', '2'])
    lines = [l for l in capsys.readouterr().err.splitlines() if l.startswith('dmafnet-train')]
    assert e.value.code == 3 and len(lines) == 1 and lines[0].startswith('dmafnet-train: stopped:') and 'disk is full' in lines[0]
    monkeypatch.setattr(torch, 'save', save)
    train(cfg.update(epochs=2), resume=True)                             # space again: the run goes on
    assert load_checkpoint(ck/'last.pt', fallback=False)['epoch'] == 2

def test_damaged_cache_file_is_named(cache, tmp_path, capsys):
    "A truncated or corrupted case file: training and evaluation name it and say to rerun dmafnet-preprocess."
    import shutil
    from dmafnet.datasets import read_split
    from dmafnet.evaluate import load_eval_case
    from dmafnet.train import train, train_cli
    def named(msg, f): return f"{f}: not a readable dmafnet cache file" in msg and 'rerun `dmafnet-preprocess' in msg
    broken = tmp_path/'cache'; shutil.copytree(cache, broken)
    names = read_split(broken)['train']; cut = broken/f'{names[0]}.npz'
    cut.write_bytes(cut.read_bytes()[:cut.stat().st_size // 2])          # truncated: found before training starts
    with pytest.raises(ValueError) as e: train(tiny(broken, tmp_path/'run'))
    assert named(str(e.value), cut), e.value
    for load in (lambda: load_eval_case(cut), lambda: load_eval_case(names[0], broken)):
        with pytest.raises(ValueError) as e: load()
        assert named(str(e.value), cut), e.value
    shutil.copy(cache/cut.name, cut)                                     # now damage inside every training case's arrays
    for n in names:
        f = broken/f'{n}.npz'; b = bytearray(f.read_bytes()); b[len(b) // 3:len(b) // 3 + 64] = bytes(64); f.write_bytes(b)
    with pytest.raises(ValueError) as e: load_eval_case(f)
    assert named(str(e.value), f), e.value
    from dmafnet.datasets import VolumeDataset
    assert len(VolumeDataset(broken, names)) == len(names)               # their directories read: found only on loading
    args = ['--data', str(broken), '--out', str(tmp_path/'run2'), '--set', 'base_width=4', 'patch_size=[32,32]', 'batch_size=2',
            'steps_per_epoch=2', 'epochs=1', 'workers=1', 'val_every=0', 'progress=false']
    with pytest.raises(SystemExit) as e: train_cli(args)                 # found in a DataLoader worker: still one line
    lines = [l for l in capsys.readouterr().err.splitlines() if l.startswith('dmafnet-train')]
    assert e.value.code == 2 and len(lines) == 1 and 'not a readable dmafnet cache file' in lines[0] and 'dmafnet-preprocess' in lines[0]

@pytest.fixture
def nan_at(monkeypatch):
    "Make the criterion's loss NaN at the given (1-based) calls."
    from dmafnet.losses import DMAFCriterion
    original = DMAFCriterion.forward
    def patch(calls):
        count = [0]
        def forward(self, out, label, dtm=None):
            total, parts = original(self, out, label, dtm)
            count[0] += 1
            return (total * float('nan'), parts) if calls == 'all' or count[0] in calls else (total, parts)
        monkeypatch.setattr(DMAFCriterion, 'forward', forward)
    return patch

def test_nonfinite_step_skipped_and_counted(cache, tmp_path, nan_at):
    from dmafnet.train import Trainer
    nan_at({2, 3})
    trainer = Trainer(tiny(cache, tmp_path, epochs=1, val_every=0, dtm_kwargs=dict(schedule='paper')))  # statistics kept all epoch
    stats = []
    trainer.callbacks.append(lambda e, t: stats.append(t.dtm.epoch_stats_tensor().clone()) if e == 'step' else None)
    trainer.fit()
    row = json.loads(open(tmp_path/'log.jsonl').readline())
    assert row['nonfinite'] == 2 and trainer.nonfinite_total == 2 and trainer.nonfinite_run == 0
    assert torch.equal(stats[1], stats[0]) and torch.equal(stats[2], stats[0])  # NaN steps left the DTM untouched
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())

def test_bf16_autocast_through_fit_with_gradient_scaling(cache, tmp_path):
    "The CUDA default (bf16 autocast, DTM's gradient hooks installed by fit) on CPU: a float32 k once broke backward."
    from dmafnet.train import Trainer
    trainer = Trainer(tiny(cache, tmp_path, epochs=1, steps_per_epoch=3, val_every=0, precision='bf16'))
    assert trainer.amp_dtype == torch.bfloat16
    before = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.fit()
    assert trainer.nonfinite_total == 0 and np.isfinite(trainer.last_parts['loss'])
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))
    h = trainer.dtm.history
    assert len(h) == 3 * 4 and h.beta.between(0.05, 4.5).all()          # 'run' schedule: one β update per step here

def test_fp16_gradscaler_through_fit_skips_an_overflow(cache, tmp_path):
    "fp16 autocast + GradScaler on CPU through fit (DTM's hooks on): an overflowing step is skipped by the scaler, not counted."
    from dmafnet.train import Trainer
    trainer = Trainer(tiny(cache, tmp_path, epochs=1, steps_per_epoch=3, val_every=0, precision='fp16'))
    assert trainer.amp_dtype == torch.float16 and trainer.scaler.is_enabled()
    # the first step's scaled fp16 gradients overflow; the back-off then brings the scale to 2**12
    trainer.scaler = torch.amp.GradScaler('cpu', init_scale=2.0**40, backoff_factor=2.0**-28)
    scales, steps = [], []
    adam_steps = lambda t: int(next(iter(t.optimiser.state.values()))['step']) if t.optimiser.state else 0
    trainer.callbacks.append(lambda e, t: (scales.append(t.scaler.get_scale()), steps.append(adam_steps(t))) if e == 'step' else None)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.fit()
    row = json.loads(open(tmp_path/'log.jsonl').readline())
    assert trainer.nonfinite_total == 0 and row['nonfinite'] == 0 and row['scaler_skips'] == 1   # logged apart, not a failure
    assert scales[0] < 2.0**40 and scales == sorted(scales, reverse=True)   # the scale backed off
    assert steps == [0, 1, 2]                           # the overflowing step did not reach AdamW; the next ones did
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    assert (trainer.dtm.beta - 1).abs().max() > 0 and torch.isfinite(trainer.dtm.beta).all()

@pytest.mark.parametrize('dims', [2, 3])
def test_channels_last_trains_and_evaluates(cache, tmp_path, dims):
    "channels-last (2D) / channels-last-3d on CPU: a training step, then evaluation agrees with the contiguous model."
    from dmafnet.train import Trainer
    from dmafnet.trainparts import load_model
    from dmafnet.inference import predict_subsets
    from dmafnet.data import load_cached
    three = dict(spatial_dims=3, patch_size=[32, 32, 32], batch_size=1) if dims == 3 else {}
    trainer = Trainer(tiny(cache, tmp_path, epochs=1, steps_per_epoch=2, val_every=0, channels_last=True, **three))
    fmt = torch.channels_last if dims == 2 else torch.channels_last_3d
    conv = next(p for p in trainer.model.parameters() if p.ndim == dims + 2)
    assert conv.is_contiguous(memory_format=fmt)
    trainer.fit()
    assert trainer.nonfinite_total == 0 and np.isfinite(trainer.last_parts['loss'])
    model, _ = load_model(tmp_path/'checkpoints'/'last.pt')
    case = load_cached(sorted(cache.glob('*.npz'))[0])
    image = case['image'] if dims == 3 else case['image'][:, :, :, case['image'].shape[-1] // 2]
    masks = [[True] * 4, [False, True, False, False]]
    plain = predict_subsets(model, image, masks, patch_size=(32,) * dims if dims == 3 else None)
    model = model.to(memory_format=fmt)
    last = predict_subsets(model, image, masks, patch_size=(32,) * dims if dims == 3 else None)
    for a, b in zip(plain, last): torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)

@pytest.mark.parametrize('choice', ['update', 'skip'])
def test_absent_encoders(cache, tmp_path, choice):
    "A modality absent from a whole batch: 'update' lets AdamW move its encoder (zero gradient), 'skip' leaves it as it was."
    from dmafnet.train import Trainer
    trainer = Trainer(tiny(cache, tmp_path, epochs=1, steps_per_epoch=3, val_every=0, absent_encoders=choice, dtm=False))
    loader, snap = trainer.loader, {}
    def without_flair():
        for i, b in enumerate(loader):
            if i >= 1: b['availability'] = b['availability'].clone().bool(); b['availability'][:, 0] = False
            yield b
    class Loader:
        def __iter__(self): return without_flair()
    trainer.loader = Loader()
    enc = lambda: [p.detach().clone() for p in trainer.model.encoders[0].parameters()]
    trainer.callbacks.append(lambda e, t: snap.setdefault(t.global_step, enc()) if e == 'step' else None)
    trainer.fit()
    moved = any(not torch.equal(a, b) for a, b in zip(snap[1], snap[3]))
    assert moved == (choice == 'update')
    others = [p.detach() for p in trainer.model.encoders[1].parameters()]
    assert len(others) and trainer.nonfinite_total == 0

def test_dtm_schedule_follows_the_run(cache, tmp_path):
    "Under the default 'run' schedule β is updated as often as the paper's 300 epochs would, whatever the run's length."
    from dmafnet.train import Trainer
    run = Trainer(tiny(cache, tmp_path / 'run', epochs=2, steps_per_epoch=4, val_every=0))
    run.fit()
    paper = Trainer(tiny(cache, tmp_path / 'paper', epochs=2, steps_per_epoch=4, val_every=0, dtm_kwargs=dict(schedule='paper')))
    paper.fit()
    assert run.dtm.history.epoch.nunique() == 8 and paper.dtm.history.epoch.nunique() == 2
    assert run.dtm.history.step.tolist()[::4] == list(range(1, 9)) and paper.dtm.history.step.tolist()[::4] == [4, 8]
    dev = lambda t: float((t.dtm.beta - 1).abs().max())
    assert dev(run) > 10 * dev(paper)                                   # the short run's β moves, the paper-scaled one barely

def test_nonfinite_repeated_stops(cache, tmp_path, nan_at):
    from dmafnet.train import NonFiniteLoss, train
    nan_at('all')
    with pytest.raises(NonFiniteLoss, match='3 steps in a row'):
        train(tiny(cache, tmp_path, epochs=1, val_every=0, max_nonfinite=3))

def test_config_errors_name_the_field(cache, tmp_path):
    "Impossible configurations fail before any training, naming the field."
    from dmafnet.train import train
    with pytest.raises(ValueError, match="'epochz' is unknown"): tiny(cache, tmp_path, epochz=3)
    with pytest.raises(FileNotFoundError, match="'data'"): tiny(cache, tmp_path, data=str(tmp_path/'nowhere'))
    with pytest.raises(ValueError, match="'patch_size'.*larger"): train(tiny(cache, tmp_path/'p', patch_size=[64, 64]))
    with pytest.raises(ValueError, match="'patch_size'.*larger"):
        train(tiny(cache, tmp_path/'p3', spatial_dims=3, patch_size=[64, 32, 32]))
    with pytest.raises(ValueError, match="'model_kwargs'"): train(tiny(cache, tmp_path/'m', model_kwargs={'widht': 2}))
    with pytest.raises(ValueError, match="'setting'"): train(tiny(cache, tmp_path/'s', setting='mr24'))
    # a mask table keeping only t2 for every case, and one case whose t2 file is absent
    import shutil
    from dmafnet.datasets import read_split
    broken = tmp_path/'cache'; shutil.copytree(cache, broken)
    cases = pd.read_csv(broken/'cases.csv'); train_names = read_split(broken)['train']
    cases.loc[cases.name == train_names[0], 'has_t2'] = False; cases.to_csv(broken/'cases.csv', index=False)
    (tmp_path/'t2.csv').write_text('data_name,mask_id,mask,pos_mask_ids\n' +
                                   ''.join(f'{n},0,"[False, False, False, True]",[0]\n' for n in train_names))
    with pytest.raises(ValueError, match="'mask_csv'.*no available modality"):
        train(tiny(broken, tmp_path/'e', mask_csv=str(tmp_path/'t2.csv')))
    assert not any((tmp_path/x/'checkpoints').exists() for x in ('p', 'p3', 'm', 's', 'e'))

def test_cli_help_and_errors(cache, tmp_path):
    r = subprocess.run([BIN/'dmafnet-train', '--help'], capture_output=True, text=True, env=ENV, timeout=120)
    assert r.returncode == 0 and '--preset' in r.stdout and '--resume' in r.stdout and '--set' in r.stdout
    r = subprocess.run([BIN/'dmafnet-train', '--out', str(tmp_path), '--set', 'btach_size=2'],
                       capture_output=True, text=True, env=ENV, timeout=120)
    assert r.returncode == 2 and "'btach_size' is unknown (did you mean 'batch_size'?)" in r.stderr

def test_cli_trains_and_resumes(cache, tmp_path):
    "The command trains, and `--resume --epochs 3` continues from the run folder's own config."
    args = [BIN/'dmafnet-train', '--preset', 'phantom', '--data', str(cache), '--out', str(tmp_path), '--epochs', '1',
            '--set', 'base_width=4', 'patch_size=[32,32]', 'batch_size=2', 'steps_per_epoch=2', 'val_cases=1',
            'val_subsets=[14]', 'val_every=1', 'progress=false']
    r = subprocess.run(args, capture_output=True, text=True, env=ENV, timeout=300); assert r.returncode == 0, r.stderr[-3000:]
    assert {'config.yaml', 'log.jsonl', 'log.csv', 'dtm.csv', 'val.csv', 'checkpoints'} <= {p.name for p in tmp_path.iterdir()}
    r = subprocess.run([BIN/'dmafnet-train', '--out', str(tmp_path), '--resume', '--epochs', '2'],
                       capture_output=True, text=True, env=ENV, timeout=300); assert r.returncode == 0, r.stderr[-3000:]
    log = pd.read_csv(tmp_path/'log.csv')
    assert log.epoch.tolist() == [1, 2] and {'loss', 'seg', 'lr', 'beta_flair', 'val_WT', 'time_s'} <= set(log.columns)

def test_ddp_gloo_two_processes(cache, tmp_path):
    "torchrun, 2 CPU processes (gloo): ranks end with identical weights and identical DTM β; rank 0 alone writes."
    cfg = tiny(cache, tmp_path, epochs=2, steps_per_epoch=2, val_every=2)
    script = tmp_path/'run.py'; script.write_text(RUN)
    r = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2',
                        str(script), json.dumps(cfg.to_dict()), '0', '0'],
                       env=dict(ENV, GLOO_SOCKET_IFNAME='lo'), capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stderr[-4000:]
    r0, r1 = (torch.load(tmp_path/f'rank{i}.pt', weights_only=True) for i in range(2))
    assert same_state(r0['model'], r1['model'])
    assert torch.equal(r0['beta'], r1['beta']) and not torch.equal(r0['beta'], torch.ones(4))
    st = checkpoint(tmp_path/'checkpoints'/'last.pt')
    assert st['world'] == 2 and len(st['ranks']) == 2 and same_state(st['model'], r0['model'])
    assert len(open(tmp_path/'log.jsonl').readlines()) == 2

UNEVEN = textwrap.dedent('''
    import json, os, sys, time, torch
    torch.set_num_threads(1)
    import dmafnet.trainparts as parts
    from dmafnet.config import TrainConfig
    from dmafnet.datasets import VolumeDataset
    from dmafnet.train import Trainer
    cfg, slow = TrainConfig.from_dict(json.loads(sys.argv[1])), float(sys.argv[2])
    t = Trainer(cfg)
    loader = t.loader
    def uneven():   # rank 0: every modality; rank 1: t1ce alone, and at its second step t2 alone
        for i, b in enumerate(loader):
            a = torch.zeros_like(b['availability'], dtype=torch.bool)
            if t.rank == 0: a[:] = True
            else: a[:, 3 if i == 1 else 1] = True
            b['availability'] = a; yield b
    class Loader:
        def __iter__(self): return uneven()
    t.loader = Loader()
    if slow:        # three validation cases, each slowed by `slow` seconds: one rank alone would wait 3·slow
        t.val_set = VolumeDataset(t.data.cache, t.data.val + t.data.train[:2])
        infer = parts.predict_subsets
        def slowed(*a, **k): time.sleep(slow); return infer(*a, **k)
        parts.predict_subsets = slowed
    t.fit()
    torch.save({'model': t.model.state_dict(), 'beta': t.dtm.beta.cpu(), 'k': t.dtm.k.cpu() if t.dtm.k is not None else None},
               os.path.join(cfg.out, f'rank{t.rank}.pt'))
''')

def torchrun(tmp_path, script, *args, timeout=400):
    (tmp_path/'run.py').write_text(script)
    return subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2',
                           str(tmp_path/'run.py'), *args], env=dict(ENV, GLOO_SOCKET_IFNAME='lo'),
                          capture_output=True, text=True, timeout=timeout)

def test_ddp_different_availability_per_rank(cache, tmp_path):
    "gloo, 2 processes: every modality on one rank, a single one on the other (find_unused_parameters off): no hang, same weights and β."
    cfg = tiny(cache, tmp_path, epochs=2, steps_per_epoch=2, val_every=0)
    assert not cfg.ddp_find_unused
    r = torchrun(tmp_path, UNEVEN, json.dumps(cfg.to_dict()), '0', timeout=300)
    assert r.returncode == 0, r.stderr[-4000:]
    r0, r1 = (torch.load(tmp_path/f'rank{i}.pt', weights_only=True) for i in range(2))
    assert same_state(r0['model'], r1['model'])
    assert torch.equal(r0['beta'], r1['beta']) and not torch.equal(r0['beta'], torch.ones(4))

def test_ddp_validation_is_shared_and_outlasts_no_timeout(cache, tmp_path):
    "A validation slowed past the process group's timeout: shared over the ranks, no rank waits long enough to abort."
    cfg = tiny(cache, tmp_path, epochs=1, steps_per_epoch=1, val_every=1, val_cases=3, ddp_timeout=12)
    r = torchrun(tmp_path, UNEVEN, json.dumps(cfg.to_dict()), '5', timeout=300)   # 3 cases × 5 s: 15 s on one rank
    assert r.returncode == 0, r.stderr[-4000:]
    val = pd.read_csv(tmp_path/'val.csv')
    assert val.case.nunique() == 3 and 'val_mean' in json.loads(open(tmp_path/'log.jsonl').readline())

def test_papermill_run_notebook(cache, tmp_path):
    "nbs/runs/train.ipynb at tiny size, as `make demo` runs it: progress lines reach papermill's log, the HTML opens on the summary."
    overrides = dict(base_width=4, patch_size=[32, 32], batch_size=2, steps_per_epoch=2, val_cases=1, val_subsets=[14],
                     val_every=1)
    params = json.dumps(dict(preset='phantom', data=str(cache), out=str(tmp_path/'run'), epochs=2, overrides=overrides,
                             eval_cases=1, eval_subsets=[14, 3], progress='lines'))
    r = subprocess.run([BIN/'papermill', str(ROOT/'nbs'/'runs'/'train.ipynb'), str(tmp_path/'out.ipynb'), '-k', 'python3',
                        '--log-output', '--no-progress-bar', '-y', params], capture_output=True, text=True, env=ENV,
                       timeout=400, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-4000:]
    log = r.stdout + r.stderr
    for pattern in (r'epoch 1/2: 1/2 steps · .* left · loss \d', r'epochs: 1/2 epoch · .*left', r'epochs: 2/2 epoch',
                    r'evaluate: 1/1 case'):
        assert re.search(pattern, log), f'{pattern!r} not in the log:\n{log[-3000:]}'
    assert (tmp_path/'run'/'checkpoints'/'best.pt').exists() and (tmp_path/'run'/'evaluation').is_dir()
    nb = json.loads((tmp_path/'out.ipynb').read_text())
    images = [o for c in nb['cells'] if c['cell_type'] == 'code' for o in c.get('outputs', []) if 'image/png' in o.get('data', {})]
    assert len(images) >= 2
    r = subprocess.run([BIN/'jupyter', 'nbconvert', '--log-level', 'WARN', '--to', 'html', '--no-input', '--template-file',
                        str(ROOT/'nbs'/'runs'/'report.html.j2'),
                        '--TagRemovePreprocessor.remove_all_outputs_tags=["log"]', str(tmp_path/'out.ipynb')],
                       capture_output=True, text=True, env=ENV, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    html = (tmp_path/'out.html').read_text()
    headings = re.findall(r'<h2[^>]*>(.*?)<', html)
    assert headings[0] == 'Summary', headings
    assert 'make_preset' not in html and 'epoch 1/2: 1/2 steps' not in html   # no code, no progress lines
    assert 'Dice (%), mean over the 2 subsets' in html and 'machine' in html
    assert 'Alternative text is missing' not in r.stderr and 'No description has been provided' not in html
    assert 'alt="Heat map of the mean Dice' in html

@pytest.mark.gpu
@pytest.mark.slow
def test_cuda_brats2020_preset_amp(tmp_path):
    "CUDA smoke test: the brats2020 preset (3D, 80³, batch 1, AMP) on a 1 mm phantom, a few hundred steps, loss falls."
    from dmafnet.config import preset
    from dmafnet.train import Trainer
    cfg = preset('brats2020', out=str(tmp_path), phantom_cases=6, phantom_spacing=1.0, epochs=1, steps_per_epoch=300,
                 val_every=1, val_cases=1, val_subsets=[14], workers=4, progress=False)
    trainer = Trainer(cfg)
    assert trainer.device.type == 'cuda' and trainer.amp_dtype in (torch.bfloat16, torch.float16)
    losses = []
    trainer.callbacks.append(lambda e, t: losses.append(t.last_parts['loss']) if e == 'step' and t.last_parts else None)
    trainer.fit()
    assert len(losses) >= 290 and np.mean(losses[-50:]) < 0.8 * np.mean(losses[:50])
    assert torch.cuda.max_memory_allocated() > 0

@pytest.mark.slow
def test_compile_with_gradient_scaling_matches_eager():
    "torch.compile of the network with DTM's gradient-scaling hooks on (k ≠ 1): the same gradients as eager."
    from dmafnet.network import DMAFNet
    torch.manual_seed(0)
    net = DMAFNet(4, 4, spatial_dims=2, base_width=4)
    x, avail = torch.randn(2, 4, 32, 32), torch.tensor([[1, 1, 0, 1], [1, 1, 1, 1]], dtype=torch.bool)
    net.set_grad_scale(torch.tensor([0.5, 1., 2., 3.]))
    def grads(model):
        net.zero_grad(set_to_none=True)
        out = model(x, avail)
        (out.logits.square().mean() + out.modality_logits.square().mean()).backward()
        return {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}
    eager, compiled = grads(net), grads(torch.compile(net))
    assert eager.keys() <= compiled.keys() and len(eager) > 10
    for n in eager: torch.testing.assert_close(compiled[n], eager[n], rtol=1e-4, atol=1e-5, msg=n)
    for n in compiled.keys() - eager.keys(): assert not compiled[n].any(), n   # compiled graphs give unused heads zeros
    net.set_grad_scale(None)
    plain = grads(net)
    enc = [n for n in eager if n.startswith('encoders.3.')]
    assert enc and all(torch.allclose(eager[n], 3 * plain[n], rtol=1e-4, atol=1e-6) for n in enc)   # the hooks acted

def test_run_notebook_3d_patch_fits_the_phantom(tmp_path):
    "`make demo DIMS=3`: the phantom preset's 3D variant (`OTHER_DIMS`), which the run notebook takes, has a patch that fits its preprocessed cases (63 axial slices at 3 mm)."
    from dmafnet.config import preset
    from dmafnet.data import preprocess_case, read_brats_case
    from dmafnet.phantom import make_phantom
    src = json.loads((ROOT/'nbs'/'runs'/'train.ipynb').read_text())
    code = ''.join(''.join(c['source']) for c in src['cells'] if c['cell_type'] == 'code')
    assert 'make_preset(preset, dims=dims' in code                     # the notebook takes the preset's own 3D variant
    cfg = preset('phantom'); patch = preset('phantom', dims=3).patch_size
    for d in make_phantom(tmp_path/'raw', n_cases=3, seed=cfg.phantom_seed, spacing=cfg.phantom_spacing):
        shape = preprocess_case(read_brats_case(d))['image'].shape[1:]
        assert all(p <= s for p, s in zip(patch, shape)), (d.name, shape, patch)
