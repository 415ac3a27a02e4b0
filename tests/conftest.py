"Shared fixtures for the integration tests."
from pathlib import Path
import os, pytest, torch

ROOT = Path(__file__).resolve().parents[1]
PASSION = ROOT.parent / 'shared' / 'reference' / 'passion'

torch.set_num_threads(min(2, os.cpu_count() or 1))

@pytest.fixture
def passion_ref():
    "PASSION's reference split lists and mask CSVs, when this checkout sits beside them."
    if not PASSION.is_dir(): pytest.skip(f'{PASSION} absent (only developers have the reference files)')
    return PASSION

def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available(): return
    skip = pytest.mark.skip(reason='needs CUDA')
    for item in items:
        if 'gpu' in item.keywords: item.add_marker(skip)
