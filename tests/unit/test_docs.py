"""The docs stay navigable and current.

Every relative link and every ``#anchor`` in README.md and docs/*.md lands somewhere (anchors as GitHub
renders them: headings slugged, plus explicit ``<a id="...">``); every runbook link an alarm carries
(cdk/alarms.py's specs, and any ``*.md#anchor`` written in cdk/) lands on a section of docs/runbook.md,
which has one section per alarm; docs/deploy.md's settings table is what ``python -m devtools.settings_table``
generates from ``Settings`` today.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from markdown_it import MarkdownIt
from markdown_it.token import Token

from cdk.alarms import RUNBOOK_DOC, alarm_specs, page_anchor
from devtools.settings_table import END, START, table
from modelserve.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
EXPLICIT_ANCHOR = re.compile(r"""<a\s+(?:id|name)=["']([^"']+)["']""")
# a Markdown file and an anchor, the way cdk/ writes runbook links into alarm descriptions and dashboards
MD_ANCHOR_REF = re.compile(r"([\w./-]+\.md)#([\w-]+)")
# a code span naming a file or folder of the repository, optionally a name in it: `cdk/nag.py: acknowledge`
REPO_PATH_SPAN = re.compile(
    r"((?:modelserve|serving|driftcheck|monitoring|devtools|cdk|lambda|tests|benchmarks|docs)/[\w./-]*)(?::\s*(\w+))?"
)


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lowercase, punctuation dropped, spaces to '-'."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@dataclass
class Page:
    anchors: set[str] = field(default_factory=set)
    links: list[str] = field(default_factory=list)  # hrefs of links and srcs of images, as written
    code_spans: list[str] = field(default_factory=list)


def _inline_text(inline: Token) -> str:
    return "".join(c.content for c in inline.children or [] if c.type in ("text", "code_inline"))


@cache
def parse(path: Path) -> Page:
    """Anchors a page defines and links it makes (code blocks and code spans are not links)."""
    tokens = MarkdownIt("commonmark", {"html": True}).enable("table").parse(path.read_text(encoding="utf-8"))
    page, seen = Page(), Counter[str]()
    for i, tok in enumerate(tokens):
        if tok.type == "heading_open":
            slug = github_slug(_inline_text(tokens[i + 1]))
            page.anchors.add(f"{slug}-{seen[slug]}" if seen[slug] else slug)  # GitHub numbers repeated headings
            seen[slug] += 1
        if tok.type == "html_block":
            page.anchors.update(EXPLICIT_ANCHOR.findall(tok.content))
        for child in tok.children or []:
            if child.type == "html_inline":
                page.anchors.update(EXPLICIT_ANCHOR.findall(child.content))
            elif child.type == "link_open":
                page.links.append(str(child.attrs["href"]))
            elif child.type == "image":
                page.links.append(str(child.attrs["src"]))
            elif child.type == "code_inline":
                page.code_spans.append(child.content)
    return page


def broken_links(doc: Path, root: Path = ROOT) -> list[str]:
    """Relative links of ``doc`` whose file or anchor does not exist (web links are not followed)."""
    problems = []
    for href in parse(doc).links:
        url = urlsplit(href)
        if url.scheme or url.netloc:
            continue
        target = (doc.parent / unquote(url.path)).resolve() if url.path else doc
        if not target.exists():
            problems.append(f"{doc.relative_to(root)}: {href}: no such file")
        elif url.fragment and target.suffix == ".md" and url.fragment not in parse(target).anchors:
            problems.append(f"{doc.relative_to(root)}: {href}: no such anchor in {target.relative_to(root)}")
    return problems


def stale_paths(doc: Path, root: Path = ROOT) -> list[str]:
    """Code spans of ``doc`` naming a repository file that does not exist, or a name not in that file."""
    stale = []
    for span in parse(doc).code_spans:
        if m := REPO_PATH_SPAN.fullmatch(span):
            path, name = root / m.group(1), m.group(2)
            if not path.exists() or (name and name not in path.read_text(encoding="utf-8")):
                stale.append(span)
    return stale


def unresolved_ref(doc: str, anchor: str) -> str | None:
    """Why ``doc#anchor`` (relative to the repository root) leads nowhere, or None when it resolves."""
    path = ROOT / doc
    if not path.is_file():
        return f"{doc}: no such file"
    if anchor not in parse(path).anchors:
        return f"{doc}#{anchor}: no such anchor"
    return None


def runbook_links(description: str) -> list[tuple[str, str]]:
    return MD_ANCHOR_REF.findall(description.partition("Runbook: ")[2])


def test_slugs_match_github() -> None:
    assert github_slug("Capture: every request's inputs and predictions, in S3") == "capture-every-requests-inputs-and-predictions-in-s3"
    assert github_slug("Performance (measured, make bench)") == "performance-measured-make-bench"
    assert github_slug("ModelHealth (composite)") == "modelhealth-composite"
    assert github_slug("Lambda assets without Docker") == "lambda-assets-without-docker"
    assert github_slug("max_body_bytes & co.") == "max_body_bytes--co"


def test_the_checker_finds_missing_files_anchors_and_names(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text('# Other page\n\n<a id="kept"></a>\n## Section `two`\n')
    doc = tmp_path / "doc.md"
    doc.write_text(
        "# Title\n\n[fine](other.md#section-two) [fine](other.md#kept) [fine](#title) [web](https://example.com/x#y)\n"
        "[gone](missing.md) [no anchor](other.md#nowhere) [no local anchor](#elsewhere)\n\n"
        "```\n[not a link](nowhere.md)\n```\n"
        "`cdk/real.py: THING` `cdk/real.py: GONE` `serving/moved.py` `not/a/repo/path.py`\n"
    )
    (tmp_path / "cdk").mkdir()
    (tmp_path / "cdk" / "real.py").write_text("THING = 1\n")
    assert broken_links(doc, tmp_path) == [
        "doc.md: missing.md: no such file",
        "doc.md: other.md#nowhere: no such anchor in other.md",
        "doc.md: #elsewhere: no such anchor in doc.md",
    ]
    assert stale_paths(doc, tmp_path) == ["cdk/real.py: GONE", "serving/moved.py"]


@pytest.mark.parametrize("doc", DOC_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_anchor_resolves(doc: Path) -> None:
    assert broken_links(doc) == []


@pytest.mark.parametrize("doc", DOC_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_file_the_docs_name_exists(doc: Path) -> None:
    # the layout moves; a doc naming `serving/capture.py` or `cdk/bundling.py: ASSET_PACKAGES` must follow it
    assert stale_paths(doc) == []


def test_the_readme_links_every_reference_page() -> None:
    linked = {(ROOT / urlsplit(h).path).resolve() for h in parse(ROOT / "README.md").links if not urlsplit(h).scheme}
    assert [p.name for p in DOC_FILES[1:] if p.resolve() not in linked] == []


# settings that turn on every optional alarm (request count, Firehose delivery, the challenger's)
# the logs sink has the Firehose alarms too, and its own; Parquet and drift_athena add theirs
EVERY_ALARM = Settings(
    capture_sink="logs",
    capture_format="parquet",
    drift_athena="on",
    alarm_min_requests=1,
    challenger_mode="ab",
    challenger_bundle_path="models/challenger",
)


def test_every_alarm_description_links_its_runbook_section() -> None:
    specs = alarm_specs(EVERY_ALARM, "penguins", "v1", challenger_version="v2")
    for spec in specs:
        assert runbook_links(spec.description) == [(RUNBOOK_DOC, spec.runbook_anchor)], spec.id
        assert unresolved_ref(RUNBOOK_DOC, spec.runbook_anchor) is None, spec.id


def test_runbook_links_written_in_cdk_resolve() -> None:
    # the composite alarm's description and the dashboard are built in cdk/, not from the specs
    refs = {ref for py in sorted((ROOT / "cdk").rglob("*.py")) for ref in MD_ANCHOR_REF.findall(py.read_text())}
    assert (RUNBOOK_DOC, "alarm-model-health") in refs
    assert [problem for ref in sorted(refs) if (problem := unresolved_ref(*ref))] == []


def test_the_runbook_has_one_section_per_alarm() -> None:
    sections = {a for a in parse(ROOT / RUNBOOK_DOC).anchors if a.startswith("alarm-")}
    specs = alarm_specs(EVERY_ALARM, "m", "v", challenger_version="w")
    # each alarm's section, the roll-up's, and the page (composite alarm) of each cause family
    pages = {page_anchor(s.family) for s in specs}
    assert sections == {s.runbook_anchor for s in specs} | {"alarm-model-health"} | pages


def test_the_settings_table_in_deploy_md_is_current() -> None:
    text = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    assert text.count(START) == 1 and text.count(END) == 1
    written = text.split(START, 1)[1].split(END, 1)[0].strip("\n")
    # out of date: python -m devtools.settings_table --write docs/deploy.md
    assert written == table().strip("\n")


CODE_NAME_SPAN = re.compile(r"@?([A-Za-z_][\w.]*?)(?:\(.*\))?")


def _extending_recipes() -> dict[str, list[str]]:
    """The code spans of each recipe (### heading) of development.md's Extending section."""
    text = (ROOT / "docs" / "development.md").read_text(encoding="utf-8")
    section = text.split("\n## Extending\n", 1)[1].split("\n## ", 1)[0]
    recipes = {}
    for chunk in section.split("\n### ")[1:]:
        heading, body = chunk.split("\n", 1)
        recipes[heading] = re.findall(r"`([^`\n]+)`", body)
    return recipes


def _defines(name: str, sources: list[Path]) -> bool:
    pattern = re.compile(rf"^\s*(?:(?:async\s+)?def|class)\s+{name}\b|^\s*{name}\s*(?::[^=\n]*)?=|^\s*{name}\s*:", re.M)
    return any(pattern.search(p.read_text(encoding="utf-8")) for p in sources)


@pytest.mark.parametrize("recipe", sorted(_extending_recipes()))
def test_each_extending_recipe_names_real_files_and_names(recipe: str) -> None:
    """A recipe's files exist, one of them is the test that follows it, and every name it tells a contributor
    to use (`CODECS.register`, `ctx.add(...)`, `threshold(...)`) is defined in the folders it names."""
    spans = _extending_recipes()[recipe]
    paths = [ROOT / s for s in spans if REPO_PATH_SPAN.fullmatch(s)]
    assert paths and all(p.exists() for p in paths), [str(p) for p in paths if not p.exists()]
    assert any(p.name.startswith("test_") for p in paths), f"{recipe}: no example test named"
    folders = {p if p.is_dir() else p.parent for p in paths}
    sources = sorted({f for d in folders for f in d.glob("*.py")})
    names = [m.group(1).rsplit(".", 1)[-1] for s in spans if "/" not in s and (m := CODE_NAME_SPAN.fullmatch(s))]
    assert names, f"{recipe}: names no code"
    missing = [n for n in names if not _defines(n, sources)]
    assert not missing, f"{recipe}: not defined in {sorted(str(d.relative_to(ROOT)) for d in folders)}: {missing}"
