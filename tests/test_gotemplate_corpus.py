"""A corpus of realistic Go confd templates (tests/gotemplates/<case>/) rendered three ways.

Each case holds a template, its store (data.json) and `expected`, what Go confd rendered
(recorded by tests/gotemplates/record.py with the Go confd peer). The Go front end must render
`expected` byte for byte; `convert` must give the committed `converted.j2` (or refuse with the
committed `refused.txt`), and confd's Jinja renderer must render that to `expected` too, unless
`jinja-differs.txt` says why it cannot (then it must differ, so the note cannot go stale).
Where the peer binary is present, Go confd renders every case again.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from confd.template.golang.convert import JINJA_HELPERS, convert
from confd.template.golang.functions import SIGNATURES, go_functions
from confd.template.golang.template import GoTemplate
from confd.template.renderer import Renderer
from confd.template.store import KVStore

CORPUS = Path(__file__).parent / "gotemplates"
sys.path.insert(0, str(CORPUS))
from record import PEER, go_confd  # noqa: E402

CASES = sorted(p.name for p in CORPUS.iterdir() if (p / "template.tmpl").exists())


@pytest.fixture(autouse=True)
def _utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Go confd recorded the corpus with TZ=UTC (a template prints the zone's name)."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def _load(case: str) -> tuple[str, KVStore, str]:
    root = CORPUS / case
    data = json.loads((root / "data.json").read_text())
    return (root / "template.tmpl").read_text(), KVStore(data), (root / "expected").read_text()


def test_corpus_is_large_and_covers_the_language() -> None:
    assert len(CASES) >= 20
    sources = "".join((CORPUS / c / "template.tmpl").read_text() for c in CASES)
    for construct in ("range", "lsdir", "printf", "$", "{{-", "-}}", "index", "len", "eq",
                      "else if", "json", "split", "datetime", "with", "define", "break"):
        assert construct in sources, construct


@pytest.mark.parametrize("case", CASES)
def test_go_front_end_renders_what_go_confd_rendered(case: str) -> None:
    source, store, expected = _load(case)
    template = GoTemplate.parse(source, "template.tmpl", SIGNATURES)
    assert template.execute(go_functions(store.view())) == expected


@pytest.mark.parametrize("case", CASES)
def test_convert_gives_the_committed_jinja(case: str) -> None:
    source, _, _ = _load(case)
    result = convert(source, "template.tmpl", SIGNATURES)
    root = CORPUS / case
    if (root / "refused.txt").exists():
        assert result.text is None
        assert "".join(f"{p}\n" for p in result.problems) == (root / "refused.txt").read_text()
    else:
        assert result.problems == []
        assert result.text == (root / "converted.j2").read_text()


@pytest.mark.parametrize("case", [c for c in CASES if (CORPUS / c / "converted.j2").exists()])
def test_converted_jinja_renders_what_go_confd_rendered(case: str, tmp_path: Path) -> None:
    _, store, expected = _load(case)
    (tmp_path / "t.j2").write_text((CORPUS / case / "converted.j2").read_text())
    try:
        text = Renderer(tmp_path).render("t.j2", store, JINJA_HELPERS).text
    except Exception as exc:  # noqa: BLE001 - a documented difference may be an error
        text = f"error: {exc}"
    if (CORPUS / case / "jinja-differs.txt").exists():
        assert text != expected
    else:
        assert text == expected


@pytest.mark.skipif(not PEER.exists(), reason="no Go confd peer binary on this machine")
@pytest.mark.parametrize("case", CASES)
def test_expected_is_what_go_confd_renders(case: str) -> None:
    source, store, expected = _load(case)
    status, output, log = go_confd(PEER, source, store.snapshot())
    assert status == 0, log
    assert output == expected
