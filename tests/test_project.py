"The house itself: settings nbdev needs, and the package imports."
import configparser
from conftest import ROOT

def test_settings_keep_papermill_tags():
    cfg = configparser.ConfigParser(delimiters=['=']); cfg.read(ROOT / 'settings.ini')
    d = cfg['DEFAULT']
    assert 'tags' in d['allowed_cell_metadata_keys']
    assert set(d['tst_flags'].split()) >= {'slow', 'gpu'}

def test_package_imports():
    import dmafnet, dmafnet.core
    assert dmafnet.__version__
