"""Where a benchmark's numbers come from, written one way: the machine, the commit (marked when the package differs from it), the date, versions."""
from __future__ import annotations
import json, platform, subprocess, sys
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from dmafnet.report import machine   # noqa: E402  (one description of the machine, shared with the run reports)


def git_commit(paths=('dmafnet',))->str:
    "The short commit of the checkout, with '+changes' when `paths` differ from it ('?' outside git)."
    try:
        c = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(['git', 'status', '--porcelain', '--', *paths], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except OSError: return '?'
    return (c or '?') + ('+changes' if dirty else '')

def provenance(**extra)->dict:
    "machine, commit, UTC date, Python and torch versions (and `extra`), for a benchmark's JSON."
    import torch
    return dict(machine=machine(), commit=git_commit(), date=datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
                python=platform.python_version(), torch=torch.__version__, **extra)

def write_text(path, text:str)->Path:
    "Write a results file atomically (a temporary file, then a rename): an interrupted benchmark leaves the previous file whole."
    from dmafnet.core import atomic_write   # here, not at the top: dmafnet.core imports torch, which most callers need not load
    with atomic_write(path) as f: f.write(text)
    return Path(path)

def write_json(path, data, indent:int=1)->Path:
    "`write_text` of `data` as indented JSON."
    return write_text(path, json.dumps(data, indent=indent))
