"""Where a benchmark's numbers come from, written one way: the machine, the commit (marked when the package differs from it), the date, versions."""
from __future__ import annotations
import os, platform, subprocess
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

def machine()->str:
    "The CPU model (from /proc/cpuinfo where there is one), architecture and core count, for benchmark records."
    model = ''
    try: model = next(l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name'))
    except (OSError, StopIteration): model = platform.processor()
    return f"{model + ', ' if model else ''}{platform.machine()}, {os.cpu_count()} CPUs"

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
