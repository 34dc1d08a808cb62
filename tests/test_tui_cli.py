"""p2p-tui's command line: every mistake is one clear line on stderr and exit code 2, no traceback."""

from __future__ import annotations

from tui.cli import main


def run(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


def test_a_wrong_type_in_the_user_table_names_file_line_and_key(tmp_path, capsys):
    path = tmp_path / "p2p.toml"
    path.write_text('[user]\nname = "Sally"\n\nport = "5009"\n')
    code, err = run(capsys, "--config", str(path))
    assert code == 2
    assert f"{path}:4" in err and "port" in err and "Traceback" not in err
