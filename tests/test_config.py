"""Config files: an unknown key, a wrong type or bad TOML names the key and its line."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from node.config import SeedConfig, build
from node.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "p2p.toml"
    path.write_text(text)
    return path


def test_valid_file_and_flags_override(tmp_path):
    path = write(tmp_path, '[seed]\nport = 5009\nname = "s9"\npeers = ["ws://127.0.0.1:5001"]\n')
    cfg = build(SeedConfig, path, "seed", {"port": 6000, "name": None})
    assert (cfg.port, cfg.name, cfg.peers) == (6000, "s9", ["ws://127.0.0.1:5001"])


def test_unknown_key_names_key_and_line(tmp_path):
    path = write(tmp_path, "[seed]\nport = 5009\n\nmax_conections = 5\n")
    with pytest.raises(ConfigError) as info:
        build(SeedConfig, path, "seed", {})
    msg = str(info.value)
    assert "max_conections" in msg and f"{path}:4" in msg and "max_connections" in msg


def test_wrong_type_names_key_and_line(tmp_path):
    path = write(tmp_path, '[seed]\nname = "x"\nport = "5009"\n')
    with pytest.raises(ConfigError) as info:
        build(SeedConfig, path, "seed", {})
    assert "port" in str(info.value) and f"{path}:3" in str(info.value)


def test_bad_toml_and_unknown_table(tmp_path):
    with pytest.raises(ConfigError, match=r"line 2"):
        build(SeedConfig, write(tmp_path, "[seed]\nport = = 1\n"), "seed", {})
    with pytest.raises(ConfigError, match=r"p2p.toml:1: unknown table or key 'sed'"):
        build(SeedConfig, write(tmp_path, "[sed]\nport = 1\n"), "seed", {})


def test_example_config_is_valid():
    from node.config import read_table

    example = Path(__file__).parent.parent / "config.example.toml"
    values = read_table(example, "seed")
    values.pop("__text__")
    SeedConfig.model_validate(values)


def test_cli_reports_config_error_and_exits_2(tmp_path):
    path = write(tmp_path, "[seed]\nbogus = 1\n")
    proc = subprocess.run(
        [sys.executable, "-m", "node", "seed", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert "bogus" in proc.stderr and ":2:" in proc.stderr and proc.stdout == ""


def test_example_config_user_table_is_valid():
    from node.config import UserConfig, read_table

    example = Path(__file__).parent.parent / "config.example.toml"
    values = read_table(example, "user")
    values.pop("__text__")
    UserConfig.model_validate(values)


def uncommented_example(tmp_path: Path) -> Path:
    """config.example.toml with every commented-out `# key = value` line switched on."""
    example = Path(__file__).parent.parent / "config.example.toml"
    text = re.sub(r"(?m)^# (\w+ = .+)$", r"\1", example.read_text())
    return write(tmp_path, text)


def test_every_key_of_the_example_loads_from_a_file(tmp_path):
    """Each documented key, the commented-out ones included, is accepted as the example spells it."""
    from node.config import UserConfig

    path = uncommented_example(tmp_path)
    text = path.read_text()
    for model, table in ((SeedConfig, "seed"), (UserConfig, "user")):
        cfg = build(model, path, table, {})
        section = text.split(f"[{table}]", 1)[1].split("\n[", 1)[0]
        keys = set(re.findall(r"(?m)^(\w+) = ", section))
        assert keys == set(model.model_fields), f"[{table}] keys the example does not show"
        assert isinstance(cfg.data_dir, Path) and "~" not in str(cfg.data_dir)
    assert build(SeedConfig, path, "seed", {}).name == "seed1"


def cli_error(path: Path, *argv: str) -> str:
    proc = subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    return proc.stderr


@pytest.mark.parametrize(
    "table, argv",
    [
        ("seed", ["-m", "node", "seed"]),
        ("user", ["-m", "node", "user"]),
        ("user", ["-c", "import sys; from tui.cli import main; sys.exit(main())"]),
    ],
    ids=["p2p-node seed", "p2p-node user", "p2p-tui"],
)
def test_a_bad_value_in_the_file_names_file_key_and_line_from_each_cli(tmp_path, table, argv):
    """Flags left out are no overrides: the file's bad value is reported where it is."""
    path = write(tmp_path, f'[{table}]\nname = "Sally"\nlog_level = "info"\nport = 70000\n')
    err = cli_error(path, *argv, "--config", str(path))
    assert f"{path}:4:" in err and "port" in err
