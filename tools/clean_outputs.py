"""Keep machine paths out of committed notebook outputs: the checkout becomes `.`, its parent `..`, temporary folders `<tmp>`.

    .venv/bin/python tools/clean_outputs.py nbs/01_data.ipynb ...   # in place (tools/nb calls it after nbdev_clean)
    .venv/bin/python tools/clean_outputs.py --check nbs/*.ipynb     # exit 1 naming what still carries a path
"""
from __future__ import annotations
import json, re, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TMP = re.compile(r'/tmp/(?:tmp|pytest-of-)[\w.-]+')
ABSOLUTE = re.compile(r'(?<![\w.~])/(?:tmp|work|home|root|Users|private)/[\w.-]+')

def clean_text(s:str)->str:
    "The text with the checkout, its parent and temporary folders written as relative placeholders."
    s = s.replace(str(ROOT) + '/', './').replace(str(ROOT), '.').replace(str(ROOT.parent) + '/', '../')
    return TMP.sub('<tmp>', s)

def _texts(output:dict):
    "(container, key) of every text field of one output."
    if 'text' in output: yield output, 'text'
    for k in (output.get('data') or {}):
        if k.startswith('text/'): yield output['data'], k
    if 'traceback' in output: yield output, 'traceback'

def clean_notebook(path:Path, check:bool=False)->list[str]:
    "Clean one notebook in place (or, with `check`, only report); the offending lines found."
    nb = json.loads(Path(path).read_text()); found, changed = [], False
    for cell in nb['cells']:
        for out in cell.get('outputs', []):
            for box, key in _texts(out):
                v = box[key]; lines = v if isinstance(v, list) else [v]
                new = [clean_text(l) for l in lines]
                found += [f"{path}: {l.strip()[:120]}" for l in (lines if check else new) if ABSOLUTE.search(l)]
                if new != lines: changed = True; box[key] = new if isinstance(v, list) else new[0]
    if changed and not check: Path(path).write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n')
    return found

if __name__ == '__main__':
    args = sys.argv[1:]; check = '--check' in args
    bad = [l for p in args if p != '--check' for l in clean_notebook(Path(p), check)]
    if bad: print('\n'.join(bad)); sys.exit(1 if check else 0)
