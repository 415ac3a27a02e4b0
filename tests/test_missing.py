"Missing-modality protocol: PASSION's mask files (read, write back byte for byte), the expected-count rule, the CLI."
import subprocess, sys
from pathlib import Path
import numpy as np, pytest
from dmafnet.missing import (subsets, subset_names, subset_id, parse_setting, expected_counts, imbalanced_masks,
                             passion_masks, PASSION_SEED,
                             read_mask_csv, write_mask_csv, modality_counts, mask_array, mask_dict, sample_pdt)

BIN = Path(sys.executable).parent
SETTINGS = ('mr2468', 'mr1379', 'mr8825')
HEADER = 'data_name,mask_id,mask,pos_mask_ids\r\n'

def _csv(ref, s): return ref / f'Brats2020_imb_split_{s}.csv'
def _train(ref): return (ref / 'train.txt').read_text().split()
def _pattern_counts(df, n=15): return df['mask_id'].value_counts().reindex(range(n), fill_value=0)

def test_spec_subset_table():
    assert subset_names(4) == ['t2', 't1ce', 't1', 'flair', 't1ce+t2', 't1ce+t1', 'flair+t1', 't1+t2', 'flair+t2',
                               'flair+t1ce', 'flair+t1ce+t1', 'flair+t1+t2', 'flair+t1ce+t2', 't1ce+t1+t2', 'all']
    assert subset_names(3) == ['t2', 'de', 'c0', 'de+t2', 'c0+t2', 'c0+de', 'all']
    assert [subset_id(s) for s in subsets(3)] == list(range(7))

def test_reference_availabilities(passion_ref):
    train = _train(passion_ref)
    assert len(train) == 219
    tables = {s: read_mask_csv(_csv(passion_ref, s), names=train) for s in SETTINGS}
    assert modality_counts(tables['mr2468']).to_dict() == dict(flair=90, t1ce=135, t1=184, t2=43)
    for s, df in tables.items():
        assert len(df) == 219 and mask_array(df).any(1).all()
        assert (abs(1 - modality_counts(df) / 219 - parse_setting(s)) < 0.07).all()  # the rule's own bias, ≤ 6.3 pts
        assert len(mask_dict(df)) == 219

def test_reference_round_trip(passion_ref, tmp_path):
    for s in SETTINGS:
        src = _csv(passion_ref, s)
        df = read_mask_csv(src)
        out = write_mask_csv(df, tmp_path / src.name)
        assert out.read_bytes() == src.read_bytes()                      # byte for byte
        again = read_mask_csv(out)
        assert again.equals(df)
        theirs = src.read_text().splitlines()[1:6]
        ours = out.read_text().splitlines()[1:6]
        assert ours == theirs                                             # mask cells formatted as theirs
    # a table we generate survives their format too
    ours = imbalanced_masks(_train(passion_ref), 'mr2468', seed=5)
    p = write_mask_csv(ours, tmp_path / 'ours.csv')
    assert read_mask_csv(p, names=_train(passion_ref)).equals(ours)
    assert write_mask_csv(read_mask_csv(p), tmp_path / 'again.csv').read_bytes() == p.read_bytes()

@pytest.mark.parametrize('setting', SETTINGS)
def test_generator_on_their_names(passion_ref, setting):
    train = _train(passion_ref)
    ref = read_mask_csv(_csv(passion_ref, setting), names=train)
    rule = expected_counts(len(train), setting)['count']
    leftover = 219 - rule.sum()
    for seed in (0, 1037):
        ours = imbalanced_masks(train, setting, seed=seed)
        assert ours['data_name'].tolist() == train and mask_array(ours).any(1).all()
        got = _pattern_counts(ours)
        assert (got >= rule).all() and (got - rule).sum() == leftover       # the expected-count table, + leftovers
        bal = imbalanced_masks(train, setting, seed=seed, leftovers='balanced')
        assert ((_pattern_counts(bal) >= rule).all())
        assert (abs(1 - modality_counts(bal) / 219 - parse_setting(setting)) <= 0.03).all()
    # PASSION's file follows the same rule
    theirs = _pattern_counts(ref)
    assert (theirs >= rule).all() and (theirs - rule).sum() == leftover

@pytest.mark.parametrize('setting', SETTINGS)
def test_passion_rule_reproduces_their_files(passion_ref, setting, tmp_path):
    "rule 'passion' on train.txt's names with PASSION's seed (1037) writes their published CSV byte for byte."
    assert PASSION_SEED == 1037
    df = imbalanced_masks(_train(passion_ref), setting, seed=PASSION_SEED, rule='passion')
    out = write_mask_csv(df, tmp_path / f'{setting}.csv')
    assert out.read_bytes() == _csv(passion_ref, setting).read_bytes()
    # the names' order in does not matter: PASSION sorts them
    assert passion_masks(_train(passion_ref)[::-1], setting).equals(df)

def test_passion_cli_reproduces_their_file(passion_ref, tmp_path):
    "dmafnet-masks --rule passion, with its default seed, writes PASSION's mr8825 file."
    r = _cli('--cases', passion_ref / 'train.txt', '--setting', 'mr8825', '--rule', 'passion', '--out', tmp_path / 'p.csv')
    assert r.returncode == 0, r.stderr
    assert 'rule passion, seed 1037' in r.stdout
    assert (tmp_path / 'p.csv').read_bytes() == _csv(passion_ref, 'mr8825').read_bytes()

def test_passion_rule_limits():
    names = [f'c{i:02d}' for i in range(20)]
    with pytest.raises(ValueError, match="BraTS generator"):
        passion_masks(names, 'mr123', modalities=('c0', 'de', 't2'))
    with pytest.raises(ValueError, match="rule 'expected'"):
        imbalanced_masks(names, 'mr2468', rule='passion', leftovers='balanced')
    with pytest.raises(ValueError, match='rule must be'):
        imbalanced_masks(names, 'mr2468', rule='nope')

def test_bad_input(tmp_path):
    def write(body):
        f = tmp_path / 'm.csv'; f.write_text(HEADER + body); return f
    with pytest.raises(ValueError, match=r'm\.csv.*line 2 \(x\).*every modality missing'):
        read_mask_csv(write('x,0,"[False, False, False, False]",[0]\r\n'))
    with pytest.raises(ValueError, match=r'm\.csv.*line 3 \(y\).*not a list'):
        read_mask_csv(write('x,0,"[False, False, False, True]",[0]\r\ny,0,"[False, Fals, False, True]",[0]\r\n'))
    with pytest.raises(ValueError, match=r'm\.csv.*unknown cases.*line 2 \(x\)'):
        read_mask_csv(write('x,0,"[False, False, False, True]",[0]\r\n'), names=['a', 'b'])
    with pytest.raises(ValueError, match=r'\[0, 1\)'):
        imbalanced_masks(['a', 'b'], [0.5, 0.5, 1.0, 0.5])
    with pytest.raises(ValueError, match=r'\[0, 1\)'):
        imbalanced_masks(['a', 'b'], [0.5, -0.1, 0.2, 0.5])
    with pytest.raises(FileNotFoundError, match='absent.csv'):
        read_mask_csv(tmp_path / 'absent.csv')

def test_pdt_uniform():
    draws = sample_pdt(np.random.default_rng(1), 4, size=30000)
    freq = np.bincount([subset_id(d) for d in draws], minlength=15) / len(draws)
    assert np.abs(freq - 1 / 15).max() < 0.01

def _cli(*args):
    exe = BIN / 'dmafnet-masks'
    if not exe.exists(): pytest.skip(f'{exe} not installed (pip install -e .)')
    return subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, timeout=120)

def test_cli(tmp_path):
    r = _cli('--help')
    assert r.returncode == 0 and '--setting' in r.stdout and '--rates' in r.stdout and '--rule' in r.stdout
    names = [f'BraTS20_Training_{i:03d}' for i in range(1, 41)]
    (tmp_path / 'list.txt').write_text('\n'.join(names) + '\n')
    r = _cli('--cases', tmp_path / 'list.txt', '--setting', 'mr2468', '--seed', 7, '--out', tmp_path / 'a.csv')
    assert r.returncode == 0, r.stderr
    a = read_mask_csv(tmp_path / 'a.csv', names=names)
    assert a.equals(imbalanced_masks(names, 'mr2468', seed=7))
    r = _cli('--cases', tmp_path / 'list.txt', '--rates', '0.6,0.4,0.2,0.8', '--seed', 7, '--out', tmp_path / 'b.csv')
    assert r.returncode == 0, r.stderr
    assert (tmp_path / 'b.csv').read_bytes() == (tmp_path / 'a.csv').read_bytes()
    for n in names[:6]: (tmp_path / 'data' / n).mkdir(parents=True)
    r = _cli('--cases', tmp_path / 'data', '--setting', 'mr1379', '--out', tmp_path / 'c.csv')
    assert r.returncode == 0, r.stderr
    assert read_mask_csv(tmp_path / 'c.csv')['data_name'].tolist() == names[:6]
    r = _cli('--cases', tmp_path / 'list.txt', '--rates', '0.6,1.0,0.2,0.8', '--out', tmp_path / 'd.csv')
    assert r.returncode != 0 and '[0, 1)' in r.stderr and not (tmp_path / 'd.csv').exists()

def test_phantom_mask_file():
    "data/phantom_mr2468.csv is what the generator makes for the default phantom's 24 names (seed 1037)."
    f = Path(__file__).resolve().parents[1] / 'data' / 'phantom_mr2468.csv'
    names = [f'BraTS20_Training_{i:03d}' for i in range(1, 25)]
    assert read_mask_csv(f, names=names).equals(imbalanced_masks(names, 'mr2468', seed=1037))
