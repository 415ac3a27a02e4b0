"README.md from nbs/index.ipynb (nbdev_readme needs Quarto, which these machines cannot install)."
import json, re, sys
from pathlib import Path

root = Path(__file__).resolve().parents[1]
nb = json.loads((root / 'nbs' / 'index.ipynb').read_text())
parts = []
for cell in nb['cells']:
    src = ''.join(cell['source'])
    if cell['cell_type'] == 'markdown': parts.append(src)
    elif not re.match(r'\s*#\|\s*(hide|export)', src) and src.strip(): parts.append(f'```python\n{src}\n```')
text = '\n\n'.join(parts).strip() + '\n'
text = re.sub(r'^> (.*)$', r'> \1', text, count=1, flags=re.M)
out = root / 'README.md'
if '--check' in sys.argv:
    if out.read_text() != text: sys.exit('README.md is stale: run `python tools/readme.py`')
else: out.write_text(text)
