"Committed notebooks: no machine paths in their outputs, and running them writes nothing into the repository."
import subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

def test_no_absolute_paths_in_outputs():
    nbs = sorted(str(p) for p in (ROOT / 'nbs').rglob('*.ipynb') if '.ipynb_checkpoints' not in p.parts)
    r = subprocess.run([sys.executable, str(ROOT / 'tools' / 'clean_outputs.py'), '--check', *nbs], capture_output=True, text=True)
    assert r.returncode == 0, f"absolute paths in committed outputs (run tools/clean_outputs.py):\n{r.stdout}"
