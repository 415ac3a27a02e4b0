"The package's module graph flows one way: no import cycle, no function-level import of a package module, no facade."
import ast
from graphlib import TopologicalSorter, CycleError
from pathlib import Path
import pytest

PKG = Path(__file__).resolve().parents[1] / 'dmafnet'

def package_imports(path:Path, modules:set)->list[tuple[str, bool]]:
    "(module of this package imported, whether at the top of the file) for every import statement in `path`."
    tree = ast.parse(path.read_text(), filename=str(path))
    top = set(map(id, tree.body))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            mod = node.module or ''
            if node.level == 1: names = [mod.split('.')[0]] if mod else [a.name for a in node.names]
            elif mod == 'dmafnet': names = [a.name for a in node.names]
            elif mod.startswith('dmafnet.'): names = [mod.split('.')[1]]
            else: continue
        elif isinstance(node, ast.Import): names = [a.name.split('.')[1] for a in node.names if a.name.startswith('dmafnet.')]
        else: continue
        out += [(n, id(node) in top) for n in names if n in modules]
    return out

def import_graph(pkg:Path=PKG)->dict[str, set]:
    "module → the package modules it imports (anywhere in the file); nbdev's `_modidx` left out."
    files = {p.stem: p for p in pkg.glob('*.py') if p.stem not in ('_modidx', '__init__')}
    return {m: {n for n, _ in package_imports(p, set(files))} - {m} for m, p in files.items()}

def test_no_import_cycle():
    try: order = list(TopologicalSorter(import_graph()).static_order())
    except CycleError as e: pytest.fail(f"import cycle in dmafnet: {' -> '.join(e.args[1])}")
    assert order.index('core') < order.index('data') < order.index('formats') < order.index('datasets') < order.index('preprocess')
    assert order.index('trainparts') < order.index('evaluate') < order.index('viewer')

def test_cycle_check_can_fail(tmp_path):
    (tmp_path / 'a.py').write_text('from .b import x\n'); (tmp_path / 'b.py').write_text('def f():\n    from dmafnet.a import y\n')
    with pytest.raises(CycleError): list(TopologicalSorter(import_graph(tmp_path)).static_order())

def test_imports_at_top_and_no_facade():
    files = {p.stem: p for p in PKG.glob('*.py') if p.stem != '_modidx'}
    lazy = [f"{p.name} imports {n} inside a function" for p in files.values() for n, top in package_imports(p, set(files)) if not top]
    assert not lazy, lazy
    for p in files.values():
        tree = ast.parse(p.read_text())
        assert not any(isinstance(n, ast.FunctionDef) and n.name == '__getattr__' for n in tree.body), f"{p.name}: module __getattr__ facade"
        assert 'importlib.import_module' not in p.read_text(), f"{p.name}: importlib re-export"

def test_nothing_after_training_imports_the_loop():
    g = import_graph()
    for m in ('evaluate', 'viewer', 'viz', 'report', 'metrics'): assert 'train' not in g[m], f"{m} imports dmafnet.train"
