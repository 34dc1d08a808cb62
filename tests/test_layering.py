"""The networking core never imports the UI toolkit."""

import subprocess
import sys


def test_node_imports_no_textual():
    code = (
        "import sys, pkgutil, importlib, node\n"
        "for m in pkgutil.walk_packages(node.__path__, 'node.'):\n"
        "    m.name.endswith('__main__') or importlib.import_module(m.name)\n"
        "bad = [m for m in sys.modules if m == 'textual' or m.startswith('textual.')]\n"
        "print(len(list(pkgutil.walk_packages(node.__path__))))\n"
        "sys.exit(1 if bad else 0)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) >= 10  # every module of node/ was imported
