"""Template syntax through the real command: auto-detection, `confd check` catching at load time
what would fail at render time, clear errors for both syntaxes, and `confd convert`."""

from __future__ import annotations

from pathlib import Path

import pytest


def resource(name: str, dest: Path, extra: str = "") -> str:
    return f'[template]\nsrc = "{name}.tmpl"\ndest = "{dest}"\nkeys = ["/app"]\n{extra}'


def test_go_and_jinja_templates_render_side_by_side(make_confdir, run_confd, tmp_path) -> None:
    confdir = make_confdir(
        templates={"go.tmpl": '{{getv "/app/x"}} {{if eq (getv "/app/x") "1"}}one{{end}}\n',
                   "jinja.tmpl": '{{ getv("/app/x") }} {{ true }}\n'},
        resources={"go.toml": resource("go", tmp_path / "go.conf"),
                   "jinja.toml": resource("jinja", tmp_path / "jinja.conf")},
    )
    result = run_confd("-onetime", "-backend", "env", "-confdir", str(confdir),
                       env={"APP_X": "1"})
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "go.conf").read_text() == "1 one\n"
    assert (tmp_path / "jinja.conf").read_text() == "1 true\n"


def test_a_go_syntax_error_names_file_line_and_column_and_writes_nothing(
    make_confdir, run_confd, tmp_path
) -> None:
    confdir = make_confdir(templates={"bad.tmpl": 'a\nb {{ getv "/app/x" }\n'},
                           resources={"bad.toml": resource("bad", tmp_path / "bad.conf",
                                                           'template_syntax = "go"\n')})
    result = run_confd("-onetime", "-backend", "env", "-confdir", str(confdir),
                       env={"APP_X": "1"})
    assert result.returncode == 1
    where = confdir / "templates" / "bad.tmpl"
    assert f'{where}:2:19: unexpected "}}" in operand' in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "bad.conf").exists()


def test_an_unknown_go_function_is_refused_at_load(make_confdir, run_confd, tmp_path) -> None:
    confdir = make_confdir(templates={"f.tmpl": 'x\n{{getvv "/app/x"}}\n'},
                           resources={"f.toml": resource("f", tmp_path / "f.conf",
                                                         'template_syntax = "go"\n')})
    result = run_confd("check", "--confdir", str(confdir))
    assert result.returncode == 1
    assert f'{confdir / "templates" / "f.tmpl"}:2:2: function "getvv" not defined' \
        in result.stdout


def test_check_reports_unknown_jinja_names_with_their_line(
    make_confdir, run_confd, tmp_path
) -> None:
    confdir = make_confdir(
        templates={"j.tmpl": '{% set port = 80 %}\n{{ port }}\n{{ gtev("/app/x") }}\n'
                             '{{ undefined_thing }}\n'},
        resources={"j.toml": resource("j", tmp_path / "j.conf")})
    result = run_confd("check", "--confdir", str(confdir))
    assert result.returncode == 1
    path = confdir / "templates" / "j.tmpl"
    assert f"{path}:3: unknown function or variable 'gtev'" in result.stdout
    assert f"{path}:4: unknown function or variable 'undefined_thing'" in result.stdout
    assert "'port'" not in result.stdout
    assert "j.tmpl read as a Jinja template" in result.stdout


def test_a_go_template_read_as_jinja_says_how_to_select_go(
    make_confdir, run_confd, tmp_path
) -> None:
    confdir = make_confdir(templates={"g.tmpl": '{{getv "/app/x"}}\n'},
                           resources={"g.toml": resource("g", tmp_path / "g.conf",
                                                         'template_syntax = "jinja"\n')})
    result = run_confd("check", "--confdir", str(confdir))
    assert result.returncode == 1
    assert "this is a Go text/template template: set template_syntax = \"go\"" in result.stdout


def test_a_template_neither_syntax_reads_reports_both_errors(
    make_confdir, run_confd, tmp_path
) -> None:
    confdir = make_confdir(templates={"n.tmpl": "{{ getv( }}\n"},
                           resources={"n.toml": resource("n", tmp_path / "n.conf")})
    result = run_confd("check", "--confdir", str(confdir))
    assert result.returncode == 1
    where = confdir / "templates" / "n.tmpl"
    assert f"{where}:1: " in result.stdout  # Jinja's error first, then Go's
    assert "(read as Jinja; as a Go template: 1:" in result.stdout


def test_a_go_template_may_define_one_named_template(make_confdir, run_confd, tmp_path) -> None:
    # Go confd renders this "main x": the file's own template is named after the file, so a
    # {{define "template"}} beside it is no redefinition (detection once parsed it as "template").
    confdir = make_confdir(
        templates={"t.tmpl": '{{define "template"}}x{{end}}main {{template "template"}}\n'},
        resources={"t.toml": resource("t", tmp_path / "t.conf")},
    )
    result = run_confd("-onetime", "-backend", "env", "-confdir", str(confdir))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "t.conf").read_text() == "main x\n"


def test_strict_and_no_dest_check(make_confdir, run_confd, tmp_path) -> None:
    confdir = make_confdir(templates={"a.tmpl": "x\n"},
                           resources={"a.toml": resource("a", Path("/nonexistent/dir/a.conf"),
                                                         "bogus_key = 1\n")})
    plain = run_confd("check", "--confdir", str(confdir))
    assert plain.returncode == 1
    assert "dest directory /nonexistent/dir does not exist" in plain.stdout
    relaxed = run_confd("check", "--confdir", str(confdir), "--no-dest-check")
    assert relaxed.returncode == 0, relaxed.stdout
    assert "unknown key 'bogus_key' in [template] ignored" in relaxed.stderr
    strict = run_confd("check", "--confdir", str(confdir), "--no-dest-check", "--strict")
    assert strict.returncode == 1
    assert "unknown key 'bogus_key' in [template] (--strict)" in strict.stdout


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ('{{ getv("/app/x", "d", "extra") }}\n',
         "wrong number of arguments: 3 given, expected getv(key, [default]) (in getv)"),
        ('{{ split("a,b") }}\n', "wrong number of arguments: 1 given, expected split(s, sep)"),
    ],
)
def test_wrong_argument_counts_name_the_signature(
    make_confdir, run_confd, tmp_path, template: str, message: str
) -> None:
    confdir = make_confdir(templates={"a.tmpl": template},
                           resources={"a.toml": resource("a", tmp_path / "a.conf")})
    result = run_confd("-onetime", "-backend", "env", "-confdir", str(confdir),
                       env={"APP_X": "1"})
    assert result.returncode == 1
    assert message in result.stderr
    assert "positional argument" not in result.stderr


def test_convert_check_writes_nothing_and_out_writes_elsewhere(
    make_confdir, run_confd, tmp_path
) -> None:
    go = '{{range gets "/app/*"}}{{.Key}}={{.Value}}\n{{end}}'
    confdir = make_confdir(templates={"a.tmpl": go, "b.tmpl": "{{range $x := seq 1 3}}"
                                      "{{if eq $x 2}}{{break}}{{end}}{{end}}\n"},
                           resources={"a.toml": resource("a", tmp_path / "a.conf")})
    checked = run_confd("convert", "--check", str(confdir))
    assert checked.returncode == 1
    assert "+{% for kv in gets(\"/app/*\") %}" in checked.stdout
    assert "b.tmpl: not converted, left untouched:" in checked.stdout
    assert "line 1: {{break}}" in checked.stdout
    assert (confdir / "templates" / "a.tmpl").read_text() == go
    out = tmp_path / "converted"
    written = run_confd("convert", "--out", str(out), str(confdir))
    assert (confdir / "templates" / "a.tmpl").read_text() == go
    assert (out / "a.tmpl").read_text().startswith('{% for kv in gets("/app/*") %}')
    assert not (out / "b.tmpl").exists()
    assert written.returncode == 1  # b.tmpl could not be converted
