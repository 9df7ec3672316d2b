"""Packaging and documentation consistency: plain file checks, no build tools needed.

Every RESTD_* knob the code reads must be documented under docs/, in the man page and in
the shipped config snippet; the RPM spec and the Debian changelog must carry the package's
version; both packages must install the daemon, the snippet and the man page.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import condor_restd
from condor_restd.settings import KNOBS

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "condor_restd"
DOCS = ROOT / "docs"
SNIPPET = ROOT / "condor_config.d" / "50-condor-restd.conf"
MAN_PAGE = DOCS / "condor_restd.8"
SPEC = ROOT / "packaging" / "rpm" / "condor-restd.spec"
DEBIAN = ROOT / "packaging" / "debian"

DAEMON = "/usr/libexec/condor/condor_restd"
INSTALLED_SNIPPET = "/etc/condor/config.d/50-condor-restd.conf"

# Names the scan below finds that are not condor_restd's own knobs but condor_master's
# per-daemon ones (<SUBSYS>_ARGS, ...): the snippet sets some, the daemon reads some
# (RESTD_USERID to drop root, RESTD_NOT_RESPONDING_TIMEOUT to pace its keepalives).
NOT_KNOBS = {"RESTD_ARGS", "RESTD_USERID", "RESTD_ENVIRONMENT", "RESTD_NOT_RESPONDING_TIMEOUT"}

# RESTD_FOO, MAX_RESTD_LOG, MAX_NUM_RESTD_LOG; not _CONDOR_RESTD_FOO (an environment
# variable spelling of a knob) nor a prefix such as "RESTD_" in f"RESTD_{name}".
KNOB_NAME = re.compile(r"(?<![A-Za-z0-9_])(?:MAX_(?:NUM_)?)?RESTD_[A-Z][A-Z0-9_]*[A-Z0-9](?![A-Za-z0-9_])")


def scanned_knobs() -> dict[str, set[str]]:
    """Knob-like names in condor_restd/**/*.py, each with the files that mention it."""
    found: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for name in KNOB_NAME.findall(path.read_text(encoding="utf-8")):
            found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return found


def all_knobs() -> set[str]:
    return {k.name for k in KNOBS} | (set(scanned_knobs()) - NOT_KNOBS)


def words_in(text: str) -> set[str]:
    return set(KNOB_NAME.findall(text))


def roff_text(path: Path) -> str:
    """The man page's text with roff's escaped hyphens (\\-) made plain."""
    return path.read_text(encoding="utf-8").replace("\\-", "-")


def test_scan_finds_the_settings_knobs() -> None:
    # Guards the regexp: settings.py spells out every knob, so the scan must see them all.
    assert {k.name for k in KNOBS} <= set(scanned_knobs())


def test_every_scanned_name_is_a_knob_or_a_listed_exception() -> None:
    known = {k.name for k in KNOBS} | NOT_KNOBS
    stray = {name: sorted(files) for name, files in scanned_knobs().items() if name not in known}
    assert not stray, (
        f"names that look like knobs but are not in condor_restd.settings.KNOBS: {stray}. "
        "Add each to KNOBS (so it is parsed and checked at start-up) or, if it is not a "
        "condor_restd setting, to NOT_KNOBS in tests/test_packaging.py.")


def test_every_knob_is_documented_in_docs() -> None:
    pages = sorted(p for p in DOCS.rglob("*.md"))
    assert pages, f"no Markdown documentation under {DOCS.relative_to(ROOT)}/ yet"
    documented: set[str] = set()
    for page in pages:
        documented |= words_in(page.read_text(encoding="utf-8"))
    missing = sorted(all_knobs() - documented)
    assert not missing, (
        f"knobs the code uses but no docs/*.md page mentions: {missing} "
        f"(looked in {[str(p.relative_to(ROOT)) for p in pages]})")


def test_every_knob_is_in_the_config_snippet() -> None:
    assert SNIPPET.is_file(), (
        f"{SNIPPET.relative_to(ROOT)} does not exist: it is the admin config snippet the "
        "packages install, and must list every RESTD_* knob with its default")
    missing = sorted(all_knobs() - words_in(SNIPPET.read_text(encoding="utf-8")))
    assert not missing, f"knobs missing from {SNIPPET.relative_to(ROOT)}: {missing}"


def test_every_knob_is_in_the_man_page() -> None:
    missing = sorted(all_knobs() - words_in(roff_text(MAN_PAGE)))
    assert not missing, (
        f"knobs missing from the CONFIGURATION section of {MAN_PAGE.relative_to(ROOT)}: {missing}")


def test_man_page_documents_every_command_line_option() -> None:
    source = (PACKAGE / "__main__.py").read_text(encoding="utf-8")
    options = set(re.findall(r"add_argument\(\s*[\"'](--[a-z][a-z0-9-]*)[\"']", source)) | {"--help"}
    page = roff_text(MAN_PAGE)
    options_section = page.split(".SH OPTIONS", 1)[-1].split(".SH ", 1)[0]
    missing = sorted(o for o in options if o not in options_section)
    assert not missing, (
        f"options condor_restd accepts but the man page's OPTIONS section does not describe: {missing}")


def test_man_page_has_the_usual_sections() -> None:
    page = MAN_PAGE.read_text(encoding="utf-8")
    assert re.search(r"^\.TH CONDOR_RESTD 8 ", page, re.M)
    for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "CONFIGURATION", "SIGNALS",
                    "EXIT STATUS", "FILES", "SEE ALSO"):
        assert re.search(rf'^\.SH "?{section}"?$', page, re.M), f"the man page lacks a {section} section"


def spec_field(name: str) -> str:
    match = re.search(rf"^{name}:\s*(\S+)\s*$", SPEC.read_text(encoding="utf-8"), re.M)
    assert match, f"{SPEC.relative_to(ROOT)} has no {name}: line"
    return match.group(1)


def test_spec_version_matches_the_package() -> None:
    assert spec_field("Version") == condor_restd.__version__


def test_debian_changelog_version_matches_the_package() -> None:
    first = (DEBIAN / "changelog").read_text(encoding="utf-8").splitlines()[0]
    match = re.match(r"^condor-restd \(([^)]+)\) ", first)
    assert match, f"unexpected first line in debian/changelog: {first!r}"
    upstream = match.group(1).rsplit("-", 1)[0]
    assert upstream == condor_restd.__version__


def test_man_page_version_matches_the_package() -> None:
    header = re.search(r"^\.TH .*$", MAN_PAGE.read_text(encoding="utf-8"), re.M)
    assert header and f'"condor_restd {condor_restd.__version__}"' in header.group(0)


def test_spec_changelog_version_matches_the_package() -> None:
    spec = SPEC.read_text(encoding="utf-8")
    entry = re.search(r"^%changelog\n\*.* - (\S+)$", spec, re.M)
    assert entry, "the spec's %changelog has no entry"
    assert entry.group(1) == f"{condor_restd.__version__}-{spec_field('Release').split('%')[0]}"


# Enough of rpm's macro expansion to read the spec's %files section.
RPM_DIRS = {"_prefix": "/usr", "_sysconfdir": "/etc", "_bindir": "/usr/bin",
            "_libexecdir": "/usr/libexec", "_mandir": "/usr/share/man", "srcname": "condor_restd"}


def spec_files() -> list[str]:
    spec = SPEC.read_text(encoding="utf-8")
    section = spec.split("\n%files", 1)[1].split("\n%changelog", 1)[0]
    return [re.sub(r"%\{(\w+)\}", lambda m: RPM_DIRS.get(m.group(1), m.group(0)), line)
            for line in section.splitlines()[1:]]


def test_spec_installs_the_daemon_snippet_and_man_page() -> None:
    spec = SPEC.read_text(encoding="utf-8")
    files = spec_files()
    assert DAEMON in files
    assert f"%config(noreplace) {INSTALLED_SNIPPET}" in files
    assert "/usr/share/man/man8/condor_restd.8*" in files
    assert "%license LICENSE" in files
    assert "condor_config.d/50-condor-restd.conf" in spec
    assert "docs/condor_restd.8" in spec
    assert "packaging/libexec/condor_restd %{buildroot}%{_libexecdir}/condor/condor_restd" in spec
    # arch-specific: it carries the compiled helper, built with the system Python's headers
    assert not re.search(r"^BuildArch:", spec, re.M)
    assert {"gcc", "python3-devel"} <= set(re.findall(r"^BuildRequires:\s*(\S+)", spec, re.M))
    assert "%{python3_sitearch}/%{srcname}/" in spec.split("\n%files", 1)[1]
    requires = set(re.findall(r"^Requires:\s*(\S+)", spec, re.M))
    assert {"python3", "python3-cherrypy", "python3-prometheus_client", "python3-pyyaml",
            "python3-condor"} <= requires


def debian_lines(name: str) -> list[list[str]]:
    text = (DEBIAN / name).read_text(encoding="utf-8")
    return [line.split() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def test_debian_installs_the_daemon_snippet_and_man_page() -> None:
    install = debian_lines("condor-restd.install")
    assert ["condor_config.d/50-condor-restd.conf", "etc/condor/config.d/"] in install
    assert [f"packaging/libexec/{Path(DAEMON).name}", str(Path(DAEMON).parent).lstrip("/") + "/"] in install
    assert ["docs/condor_restd.8"] in debian_lines("condor-restd.manpages")
    assert [DAEMON.lstrip("/"), "usr/bin/condor_restd"] in debian_lines("condor-restd.links")
    # Files under /etc are conffiles automatically from debhelper compat 12 on.
    control = (DEBIAN / "control").read_text(encoding="utf-8")
    compat = re.search(r"debhelper-compat \(= (\d+)\)", control)
    assert compat and int(compat.group(1)) >= 12


def test_debian_depends_only_on_what_debian_has() -> None:
    control = (DEBIAN / "control").read_text(encoding="utf-8")
    binary = control.split("\nPackage: condor-restd\n", 1)[1]
    fields = dict(re.findall(r"^([A-Za-z-]+):\s*((?:.*\n)(?:[ \t].*\n)*)", binary, re.M))
    depends = {d.strip().split()[0] for d in fields["Depends"].split(",") if d.strip()}
    assert {"python3-cherrypy3", "python3-prometheus-client", "python3-yaml",
            "${python3:Depends}", "${misc:Depends}"} <= depends
    assert not any("htcondor" in d for d in depends), "Debian's archive has no python3-htcondor"
    assert "python3-htcondor" in fields["Recommends"]
    # ... and ${python3:Depends} must not turn setup.py's htcondor requirement back into one.
    assert ["htcondor"] in debian_lines("py3dist-overrides")


def test_the_launcher_runs_condor_restd_main_with_the_system_python() -> None:
    launcher = ROOT / "packaging" / "libexec" / "condor_restd"
    text = launcher.read_text(encoding="utf-8")
    assert text.startswith("#!/usr/bin/python3")
    assert "from condor_restd.__main__ import main" in text
    assert not re.search(r"^__requires__\s*=", text, re.M), "no pkg_resources requirement check"
    assert launcher.stat().st_mode & 0o111, "the launcher must be executable"


@pytest.mark.parametrize("path", ["docs/condor_restd.8", "docs/install.md", "LICENSE",
                                  "packaging/debian/copyright", "packaging/debian/rules",
                                  "packaging/debian/source/format", "packaging/ci-packages.sh", "Makefile"])
def test_packaging_file_exists(path: str) -> None:
    assert (ROOT / path).is_file()


def test_license_is_apache_2() -> None:
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
