"""Build the docs site: with Quarto (`nbdev_docs`) where it is installed, else an offline static HTML site.

The offline build runs nbdev's own notebook processing (`proc_nbs` → `_proc/`: directives applied, hidden
cells dropped, `show_doc` rendered), then renders each processed notebook with nbconvert and adds the
navigation of `nbs/sidebar.yml`, so both builds follow the one `_quarto.yml` and sidebar. On top of what
nbconvert gives, the offline site has:

- a search over every page: `search.json` (and the same index as `search_index.js`, which a page opened from
  `file://` can load) and a search box in each page's sidebar;
- source links into a copy of the package source inside the site (`src/dmafnet/*.py.html`, with line anchors),
  and cross-references between pages rewritten to the local pages;
- test cells (nothing but `test_eq`/`test_fail`/`test_close`/… calls and asserts) left out of the pages;
- classes shown as `class Name(…)` with their `__init__` parameters (nbdev 2's `show_doc` writes `def Name(`).

It prints one line saying which builder it used and where the site is, plus any errors.
"""
import ast, html, importlib, inspect, json, logging, os, re, shutil, subprocess, sys
from pathlib import Path
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ENV = {**os.environ, 'PATH': f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}

def settings()->dict:
    "settings.ini's [DEFAULT] section."
    import configparser
    cp = configparser.ConfigParser(); cp.read(ROOT / 'settings.ini')
    return dict(cp['DEFAULT'])

def sidebar_entries():
    "(section, notebook path) pairs in the order of nbs/sidebar.yml."
    side = yaml.safe_load((ROOT / 'nbs' / 'sidebar.yml').read_text())['website']['sidebar']['contents']
    for item in side:
        if isinstance(item, str): yield None, item
        else:
            for sub in item['contents']: yield item['section'], sub

def front_matter(nb)->dict:
    "The YAML front matter nbdev puts in a raw cell (title, description), removing that cell from `nb`."
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == 'raw' and cell.source.lstrip().startswith('---'):
            nb.cells.pop(i)
            return yaml.safe_load(cell.source.strip().strip('-')) or {}
    return {}

def title_of(nb_path):
    "The notebook's title: its front matter's, else its first markdown heading, else its file name."
    import nbformat
    nb = nbformat.read(nb_path, as_version=4)
    fm = front_matter(nb)
    if fm.get('title'): return fm['title']
    for cell in nb.cells:
        m = re.search(r'^#\s+(.+)$', cell.source, flags=re.M) if cell.cell_type == 'markdown' else None
        if m: return m.group(1).strip()
    return nb_path.stem

def nav_html(pages, current):
    "A sidebar with a search box, listing every page, grouped by section, with the current one marked."
    out, section = ['<nav class="dm-nav"><a class="dm-home" href="index.html">dmafnet</a>',
                    '<input id="dm-search" type="search" placeholder="Search the docs" aria-label="Search the docs" autocomplete="off">',
                    '<ol id="dm-results" hidden></ol><ul>'], None
    for sec, name, title in pages:
        if sec != section:
            out.append(f'<li class="dm-sec">{html.escape(sec or "")}</li>'); section = sec
        cls = ' class="dm-cur"' if name == current else ''
        out.append(f'<li{cls}><a href="{name}.html">{html.escape(title)}</a></li>')
    return '\n'.join(out + ['</ul></nav>'])

def show_as_quarto_would(cell):
    "Honour the Quarto cell options nbdev writes (`#| echo: false`, `#| output: false`) and drop them from the code shown."
    if cell.cell_type != 'code': return
    opts = dict(re.findall(r'^#\|\s*([\w-]+):\s*(\S+)', cell.source, flags=re.M))
    if opts.get('echo') == 'false': cell.metadata.setdefault('tags', []).append('remove_input')
    if opts.get('output') == 'false': cell.outputs = []
    cell.source = re.sub(r'^#\|.*\n?', '', cell.source, flags=re.M)

TEST_CALLS = re.compile(r'test(_\w+)?$')   # fastcore.test: test_eq, test_fail, test_close, test_ne, test_is, test_warns, …

def is_test_cell(source:str)->bool:
    "A cell that only checks (fastcore `test_*` calls and asserts), nothing a reader needs to see done."
    src = re.sub(r'^\s*#\|.*$', '', source, flags=re.M)
    try: body = ast.parse(src).body
    except SyntaxError: return False
    def check(s):
        if isinstance(s, ast.Assert): return True
        return (isinstance(s, ast.Expr) and isinstance(s.value, ast.Call) and isinstance(s.value.func, ast.Name)
                and bool(TEST_CALLS.match(s.value.func.id)))
    return bool(body) and all(check(s) for s in body)

# --- signatures -------------------------------------------------------------------------------------------

SHOW_DOC = re.compile(r'(### (?P<name>[\w.]+)\n\n```python\n)(?P<sig>def (?P<short>\w+)\((?P<params>.*?)\)(?P<ret>(->.*?)?):\n)```', re.S)
SOURCE_LINK = re.compile(r'\[source\]\((?P<url>[^)]*/(?P<lib>\w+)/(?P<mod>[\w/]+)\.py#L(?P<line>\d+))\)')

def _resolve(module:str, name:str):
    "The object `name` (e.g. `Trainer` or `Viewer.set_case`) of `module`, or None."
    try: obj = importlib.import_module(module)
    except Exception: return None
    for part in name.split('.'):
        obj = getattr(obj, part, None)
        if obj is None: return None
    return obj

def _only_varargs(params:str)->bool:
    "Whether a rendered parameter list is nothing but `*args`/`**kwargs` (a wrapper's, not the real one)."
    parts = [p.strip() for p in re.sub(r'#.*', '', params).replace('\n', ' ').split(',') if p.strip()]
    return bool(parts) and all(p.startswith('*') for p in parts)

def _base_name(cls)->str:
    "A base class as code names it: `RuntimeError`, `nn.Module`, `dmafnet.core.Thing`."
    mod = cls.__module__
    if mod == 'builtins': return cls.__name__
    if mod.startswith('torch.nn'): return f'nn.{cls.__name__}'
    return f'{mod}.{cls.__qualname__}'

def _sig_lines(sig:inspect.Signature)->str:
    ps = [str(p) for p in sig.parameters.values() if p.name not in ('self', 'cls')]
    return '\n    ' + ', '.join(ps) + '\n' if ps else ''

def fix_signature(md:str)->str:
    "A `show_doc` markdown output with a class shown as `class Name(…)` and wrapped functions unwrapped."
    src, m = SOURCE_LINK.search(md), SHOW_DOC.search(md)
    if not (src and m): return md
    obj = _resolve(f"{src['lib']}.{src['mod'].replace('/', '.')}", m['name'])
    if obj is None: return md
    params, ret = m['params'], m['ret']
    if inspect.isclass(obj):
        try: sig = inspect.signature(obj)   # dataclasses, and `__init__` without `self`
        except (TypeError, ValueError): sig = None
        if sig is None or all(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in sig.parameters.values()):
            if _only_varargs(params) or not params.strip():   # nothing of its own: say what it is
                params = ', '.join(_base_name(b) for b in obj.__bases__ if b is not object)
        elif _only_varargs(params): params = _sig_lines(sig)
        new = f"class {m['short']}({params}):\n"
    else:
        if not _only_varargs(params): return md
        try: sig = inspect.signature(inspect.unwrap(obj))
        except (TypeError, ValueError): return md
        ret = '' if sig.return_annotation is inspect.Signature.empty else f"->{inspect.formatannotation(sig.return_annotation)}"
        new = f"def {m['short']}({_sig_lines(sig)}){ret}:\n"
    return md[:m.start('sig')] + new + md[m.end('sig'):]

# --- links ------------------------------------------------------------------------------------------------

def doc_page_map(pages)->dict:
    "nbdev's page name (the notebook name without its number, as Quarto writes it) → this site's page name."
    out = {}
    for _, name, _ in pages:
        out.setdefault(re.sub(r'^\d+[a-z]?_', '', name), name)
    for _, name, _ in pages:
        if re.match(r'^\d', name): out[re.sub(r'^\d+[a-z]?_', '', name)] = name   # a module page wins a name clash
    return out

def local_links(body:str, cfg:dict, page_map:dict)->str:
    "Source links → the package source copied into the site; links to the published docs → these pages."
    git, lib = cfg['git_url'].rstrip('/'), cfg['lib_path']
    body = re.sub(re.escape(git) + r'/blob/[^/"]+/' + re.escape(lib) + r'/([\w/]+)\.py(?:#L(\d+))?',
                  lambda m: f"src/{lib}/{m[1]}.py.html" + (f"#L-{m[2]}" if m[2] else ''), body)
    host = (cfg['doc_host'].rstrip('/') + '/' + cfg['doc_baseurl'].strip('/')).rstrip('/')
    def page(m):
        name = page_map.get(m[1])
        return f"{name}.html{m[2] or ''}" if name else m[0]
    return re.sub(re.escape(host) + r'/([\w-]+)\.html(#[\w.\-]*)?', page, body)

def copy_source(out:Path, cfg:dict, commit:str)->int:
    "The package's modules as highlighted HTML with line anchors (`#L-12`), under `src/`; how many."
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import PythonLexer
    lib = ROOT / cfg['lib_path']
    n = 0
    for py in sorted(lib.rglob('*.py')):
        rel = py.relative_to(ROOT).as_posix()
        dest = out / 'src' / f"{rel}.html"; dest.parent.mkdir(parents=True, exist_ok=True)
        fmt = HtmlFormatter(full=True, linenos='inline', lineanchors='L', anchorlinenos=True,
                            title=f"{rel} – dmafnet source{f' at {commit}' if commit else ''}")
        dest.write_text(highlight(py.read_text(), PythonLexer(), fmt)); n += 1
    return n

# --- search -----------------------------------------------------------------------------------------------

HEADING = re.compile(r'<h([1-4]) id="([^"]*)"[^>]*>(.*?)</h\1>', re.S)

def _text(fragment:str)->str:
    fragment = re.sub(r'<(script|style)\b.*?</\1>', ' ', fragment, flags=re.S)
    fragment = re.sub(r'<a class="anchor-link".*?</a>', '', fragment, flags=re.S)
    fragment = re.sub(r'</?(span|a|code|em|strong|b|i)\b[^>]*>', '', fragment)   # inline: no space (`def f(x`, not `def f ( x`)
    return re.sub(r'\s+', ' ', html.unescape(re.sub(r'<[^>]+>', ' ', fragment))).strip()

def index_entries(name:str, title:str, body:str, limit:int=1500)->list:
    "Search entries of one rendered page: one per heading (its text up to the next heading)."
    main = body.split('</nav>', 1)[-1]
    marks = list(HEADING.finditer(main))
    out = []
    for i, h in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(main)
        out.append(dict(page=title, section=_text(h[3]), href=f"{name}.html#{h[2]}", text=_text(main[h.end():end])[:limit]))
    if not out: out.append(dict(page=title, section=title, href=f"{name}.html", text=_text(main)[:limit]))
    return out

SEARCH_JS = r"""
(function(){
  var box = document.getElementById('dm-search'), list = document.getElementById('dm-results');
  if (!box || !window.DM_SEARCH) return;
  function esc(s){ return s.replace(/[&<>"]/g, function(c){ return {'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c]; }); }
  function run(){
    var q = box.value.trim().toLowerCase(), terms = q.split(/\s+/).filter(Boolean);
    list.innerHTML = '';
    if (!terms.length) { list.hidden = true; return; }
    var hits = [];
    window.DM_SEARCH.forEach(function(e){
      var head = (e.page + ' ' + e.section).toLowerCase(), text = e.text.toLowerCase(), score = 0;
      for (var i = 0; i < terms.length; i++) {
        var t = terms[i], inHead = head.indexOf(t) >= 0, inText = text.indexOf(t) >= 0;
        if (!inHead && !inText) return;
        score += (inHead ? 10 : 0) + (inText ? 1 : 0);
      }
      hits.push([score, e]);
    });
    hits.sort(function(a, b){ return b[0] - a[0]; });
    if (!hits.length) list.innerHTML = '<li class="dm-none">no match</li>';
    hits.slice(0, 12).forEach(function(h){
      var e = h[1], at = e.text.toLowerCase().indexOf(terms[0]), from = Math.max(0, at - 40);
      var snip = at < 0 ? e.text.slice(0, 90) : (from ? '…' : '') + e.text.slice(from, at + 70) + '…';
      list.insertAdjacentHTML('beforeend', '<li><a href="' + e.href + '"><b>' + esc(e.section) + '</b> <span>' +
        esc(e.page) + '</span></a><small>' + esc(snip) + '</small></li>');
    });
    list.hidden = false;
  }
  box.addEventListener('input', run);
  box.addEventListener('keydown', function(ev){
    if (ev.key === 'Enter') { var a = list.querySelector('a'); if (a) window.location.href = a.href; }
    if (ev.key === 'Escape') { box.value = ''; run(); }
  });
})();
"""

CSS = """<style>
.dm-nav{position:fixed;top:0;left:0;width:230px;height:100%;overflow:auto;background:#f7f7f9;border-right:1px solid #ddd;padding:12px;font:14px sans-serif;box-sizing:border-box;z-index:10}
.dm-nav ul{list-style:none;padding:0}.dm-nav li{margin:4px 0}.dm-sec{font-weight:bold;margin-top:12px!important;color:#555}
.dm-cur a{font-weight:bold;color:#c7254e}.dm-home{font-size:20px;font-weight:bold;text-decoration:none}
#dm-search{width:100%;margin:10px 0 4px;padding:5px 6px;font-size:14px;box-sizing:border-box}
#dm-results{list-style:none;padding:0;margin:0 0 10px;border-bottom:1px solid #ddd}
#dm-results li{margin:0 0 8px}#dm-results a{text-decoration:none}#dm-results span{color:#777;font-size:12px}
#dm-results small{display:block;color:#555;font-size:12px;line-height:1.3}
body{margin-left:260px!important}
</style>"""

# --- the build --------------------------------------------------------------------------------------------

def _run_quiet(cmd, what):
    "Run `cmd` with its output captured; on failure print it and stop."
    r = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True)
    if r.returncode:
        sys.stderr.write(r.stdout[-4000:] + r.stderr[-8000:])
        sys.exit(f'docs: {what} failed (exit {r.returncode})')
    return r

def process_notebooks():
    "nbdev's notebook processing into `_proc/`, without its Quarto install (which `nbdev_proc_nbs` attempts) or `pip install`."
    _run_quiet([sys.executable, '-c', 'from nbdev.serve import proc_nbs; proc_nbs(n_workers=1)'], 'processing the notebooks (nbdev proc_nbs)')
    return ROOT / '_proc'

def offline_build(out)->str:
    from nbconvert import HTMLExporter
    from traitlets.config import Config
    import nbformat
    cfg = settings()
    proc = process_notebooks()
    pages, errors = [], []
    for sec, rel in sidebar_entries():
        src = proc / rel
        if not src.exists(): errors.append(f'docs: {rel} listed in sidebar.yml but absent; skipped'); continue
        pages.append((sec, Path(rel).stem, title_of(src), src))
    if out.exists(): shutil.rmtree(out)
    out.mkdir(parents=True)
    c = Config(); c.TagRemovePreprocessor.remove_input_tags = {'remove_input'}; c.TagRemovePreprocessor.enabled = True
    exporter = HTMLExporter(template_name='lab', config=c)
    exporter.log.setLevel(logging.ERROR)
    exporter.exclude_input_prompt = exporter.exclude_output_prompt = True
    nav_pages = [(s, n, t) for s, n, t, _ in pages]
    page_map = doc_page_map(nav_pages)
    sys.path.insert(0, str(ROOT))
    index, n_tests = [], 0
    for sec, name, title, src in pages:
        nb = nbformat.read(src, as_version=4)
        fm = front_matter(nb)
        head = f"# {fm.get('title', title)}" + (f"\n\n> {fm['description']}" if fm.get('description') else '')
        tests = [c for c in nb.cells if c.cell_type == 'code' and is_test_cell(c.source)]
        n_tests += len(tests)
        nb.cells = [nbformat.v4.new_markdown_cell(head)] + [c for c in nb.cells if not any(c is t for t in tests)]
        for cell in nb.cells:
            show_as_quarto_would(cell)
            for o in cell.get('outputs', []):
                md = o.get('data', {}).get('text/markdown')
                if md: o['data']['text/markdown'] = fix_signature(''.join(md))
        body, _ = exporter.from_notebook_node(nb)
        body = re.sub(r'\{target="_blank"[^}]*\}', '', body)     # Quarto link attributes, meaningless here
        body = local_links(body, cfg, page_map)
        # nbdev links to a symbol by its lower-cased name (`viewer.set_case`); nbconvert's ids keep the case
        body = re.sub(r'(<h3 id="([^"]*[A-Z][^"]*)"[^>]*>)', lambda m: f'{m[1]}<a id="{m[2].lower()}"></a>', body)
        body = body.replace('<body', CSS + '\n<body', 1)
        body = re.sub(r'(<body[^>]*>)', lambda m: m.group(1) + nav_html(nav_pages, name), body, count=1)
        body = body.replace('</body>', '<script src="search_index.js"></script>\n<script src="search.js"></script>\n</body>', 1)
        body = re.sub(r'<title>.*?</title>', f'<title>{html.escape(title)} – dmafnet</title>', body, count=1, flags=re.S)
        (out / f'{name}.html').write_text(body)
        index += index_entries(name, title, body)
    (out / 'search.json').write_text(json.dumps(index, ensure_ascii=False))
    (out / 'search_index.js').write_text('window.DM_SEARCH = ' + json.dumps(index, ensure_ascii=False) + ';\n')
    (out / 'search.js').write_text(SEARCH_JS)
    for extra in ['styles.css']: shutil.copy(proc / extra, out / extra)
    commit = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    n_src = copy_source(out, cfg, commit)
    for e in errors: print(e, file=sys.stderr)
    return (f'docs: offline HTML builder (Quarto not installed): {len(pages)} pages, {len(index)} search entries, '
            f'{n_src} source files, {n_tests} test cells left out, in {out.relative_to(ROOT)}/ (open {out.relative_to(ROOT)}/index.html)')

def main():
    if shutil.which('quarto', path=ENV['PATH']):
        _run_quiet([str(BIN / 'nbdev_docs')], 'nbdev_docs (Quarto)')
        print(f"docs: Quarto builder (nbdev_docs), site in {settings().get('doc_path', '_docs')}/")
    else:
        print(offline_build(ROOT / '_docs'))

if __name__ == '__main__': main()
