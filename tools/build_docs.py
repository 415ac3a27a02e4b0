"""Build the docs site: with Quarto (`nbdev_docs`) where it is installed, else an offline static HTML site.

The offline build runs nbdev's own notebook processing (`nbdev_proc_nbs` → `_proc/`: directives applied,
hidden cells dropped, `show_doc` rendered), then renders each processed notebook with nbconvert and adds
the navigation of `nbs/sidebar.yml`, so both builds follow the one `_quarto.yml` and sidebar.
"""
import html, os, re, shutil, subprocess, sys
from pathlib import Path
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ENV = {**os.environ, 'PATH': f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}  # nbdev calls `pip`: use ours

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
    if front_matter(nb).get('title'): return front_matter(nbformat.read(nb_path, as_version=4))['title']
    for cell in nb.cells:
        m = re.search(r'^#\s+(.+)$', cell.source, flags=re.M) if cell.cell_type == 'markdown' else None
        if m: return m.group(1).strip()
    return nb_path.stem

def nav_html(pages, current):
    "A sidebar listing every page, grouped by section, with the current one marked."
    out, section = ['<nav class="dm-nav"><a class="dm-home" href="index.html">dmafnet</a><ul>'], None
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

CSS = """<style>
.dm-nav{position:fixed;top:0;left:0;width:230px;height:100%;overflow:auto;background:#f7f7f9;border-right:1px solid #ddd;padding:12px;font:14px sans-serif}
.dm-nav ul{list-style:none;padding:0}.dm-nav li{margin:4px 0}.dm-sec{font-weight:bold;margin-top:12px!important;color:#555}
.dm-cur a{font-weight:bold;color:#c7254e}.dm-home{font-size:20px;font-weight:bold;text-decoration:none}
body{margin-left:260px!important}
</style>"""

def offline_build(out):
    from nbconvert import HTMLExporter
    import nbformat
    subprocess.run([str(BIN / 'nbdev_proc_nbs')], cwd=ROOT, env=ENV, check=True)
    proc = ROOT / '_proc'
    pages = []
    for sec, rel in sidebar_entries():
        src = proc / rel
        if not src.exists(): print(f'docs: {rel} listed in sidebar.yml but absent; skipped'); continue
        pages.append((sec, Path(rel).stem, title_of(src), src))
    if out.exists(): shutil.rmtree(out)
    out.mkdir(parents=True)
    from traitlets.config import Config
    c = Config(); c.TagRemovePreprocessor.remove_input_tags = {'remove_input'}; c.TagRemovePreprocessor.enabled = True
    exporter = HTMLExporter(template_name='lab', config=c)
    exporter.exclude_input_prompt = exporter.exclude_output_prompt = True
    nav_pages = [(s, n, t) for s, n, t, _ in pages]
    for sec, name, title, src in pages:
        nb = nbformat.read(src, as_version=4)
        fm = front_matter(nb)
        head = f"# {fm.get('title', title)}" + (f"\n\n> {fm['description']}" if fm.get('description') else '')
        nb.cells.insert(0, nbformat.v4.new_markdown_cell(head))
        for cell in nb.cells: show_as_quarto_would(cell)
        body, _ = exporter.from_notebook_node(nb)
        body = re.sub(r'\{target="_blank"[^}]*\}', '', body)     # Quarto link attributes, meaningless here
        body = body.replace('<body', CSS + '\n<body', 1)
        body = re.sub(r'(<body[^>]*>)', lambda m: m.group(1) + nav_html(nav_pages, name), body, count=1)
        body = re.sub(r'<title>.*?</title>', f'<title>{html.escape(title)} – dmafnet</title>', body, count=1, flags=re.S)
        (out / f'{name}.html').write_text(body)
    for extra in ['styles.css']: shutil.copy(proc / extra, out / extra)
    print(f'docs: offline site with {len(pages)} pages in {out.relative_to(ROOT)}/ (open index.html)')

def main():
    if shutil.which('quarto', path=ENV['PATH']):
        subprocess.run([str(BIN / 'nbdev_docs')], cwd=ROOT, env=ENV, check=True)
    else:
        print('docs: Quarto not found; building the offline HTML site instead')
        offline_build(ROOT / '_docs')

if __name__ == '__main__': main()
