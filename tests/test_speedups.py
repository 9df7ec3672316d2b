"""The compiled helper (condor_restd/_speedups.c) against the pure-Python path it stands in for: byte for byte."""

from __future__ import annotations

import contextlib
import json
import string
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from unittest import mock

import classad2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from condor_restd import condor, encoding

from .conftest import DATA, lowered

DEMO = Path(condor.__file__).with_name("demo_data")
Record = tuple[tuple[int, int], bytes]


@pytest.fixture
def fast() -> Any:
    """The compiled module; tests of it skip (test_the_extension_is_built fails) when it is missing."""
    if encoding._speedups is None:
        pytest.skip("condor_restd._speedups is not built")
    return encoding._speedups


# ------------------------------------------------------------------------------ the reference

@contextlib.contextmanager
def python_only() -> Iterator[None]:
    """condor as it runs where the extension was not built."""
    with mock.patch.object(encoding, "_speedups", None):
        yield


def py_lower(text: str) -> str:
    return encoding._lower_names(text)


def py_record(ad: Any) -> Record:
    with python_only():
        return condor.job_record(ad)


def py_listing(ads: Sequence[Any], sort: bool, cap: int) -> tuple[bytes, list[int]]:
    """What the API serves without the helper: records sorted (stably) by id, the first `cap`."""
    records = [py_record(ad) for ad in ads]
    if sort:
        records.sort(key=lambda record: record[0])
    if cap > 0:
        records = records[:cap]
    if not records:
        return b"[]\n", []
    ends, at = [], 0
    for _, record in records:
        at += 2 + len(record)  # "[\n" before the first record, ",\n" before the others
        ends.append(at)
    return b"[\n" + b",\n".join(record for _, record in records) + b"\n]\n", ends


def needs_python(ad: Any) -> bool:
    """Whether the helper must hand the ad back: ids not plain integers in [0, 10**15), or non-ASCII text."""
    def plain(name: str) -> bool:
        value = ad.get(name)
        return type(value) is int and 0 <= value < 10 ** 15
    text = ad.printJson()
    return not (text.isascii() and plain("ClusterId") and plain("ProcId")
                and '\n  "ClusterId": ' in text and '\n  "ProcId": ' in text)


# ------------------------------------------------------------------------------ the ads

def demo_ads(name: str) -> list[Any]:
    return condor.parse_ads((DEMO / name).read_text())


def data_ads(path: Path) -> list[Any]:
    """tests/data: printJson() captures of a real pool (JSON arrays), or long-format .ads files."""
    if path.suffix == ".ads":
        return condor.parse_ads(path.read_text())
    return [classad2.parseOne(json.dumps(ad), classad2.ParserType.JSON) for ad in json.loads(path.read_text())]


DEMO_FILES = sorted(p.name for p in DEMO.glob("*.ads"))
DATA_FILES = sorted(str(p.relative_to(DATA)) for p in DATA.rglob("*") if p.suffix in (".ads", ".json"))
JOB_FILES = [name for name in DEMO_FILES if name.startswith(("jobs-", "history-"))]

SPECIAL = {  # ClassAd syntax, each with something the one-pass scan must get right
    "nested": '[A=1; B=[C=2; D=[E=3]]; F={[G=1],[H=2]}; I={"X","Y"}]',
    "deep": '[Top=[Mid={[Low=[Leaf={"A","B",[Z=1]}]]}]; Empty=[]; None={}]',
    "strings": r'[S1="a\"b: c"; S2="back\\slash"; S3="\\"; S4="\\\""; S5="ends with \\\\"; S6="Colon\": "]',
    "fake-name": r'[Value="\n  \"Fake\": 1"; List={"\n  \"Fake\": ", "X\": "}]',
    "escapes": '[Tab="a\\tb"; Cr="a\\rb"; Nl="a\\nb"; Slash="a/b"]',
    "quoted-names": r"""['Has Space'=1; 'Dot.Ted'=2; 'Quo"Te'=3; 'Back\\'=4; 'New\nLine'=5; 'Apos\'Trophe'=6]""",
    "expressions": '[Expr=Other + 1; Call=strcat("A\\n", "\\"B\\": "); Real=1e300; Und=undefined; Err=error]',
    "empty": "[]",
    "ids": '[ClusterId=12; ProcId=3; Nested=[ClusterId=99; ProcId=98]]',
    "ids-nested-only": '[Nested=[ClusterId=99; ProcId=98]; List={[ClusterId=1; ProcId=2]}]',
}


def special(name: str) -> Any:
    return classad2.ClassAd(SPECIAL[name])


def all_ads() -> list[Any]:
    ads = [ad for name in DEMO_FILES for ad in demo_ads(name)]
    ads += [ad for name in DATA_FILES for ad in data_ads(DATA / name)]
    return ads + [special(name) for name in SPECIAL]


def job(cluster: Any, proc: Any, **attrs: Any) -> Any:
    ad = classad2.ClassAd({"Owner": "Bob", "JobStatus": 2, **attrs})
    if cluster is not None:
        ad["ClusterId"] = cluster
    if proc is not None:
        ad["ProcId"] = proc
    return ad


def python_only_ads() -> dict[str, Any]:
    """Job ads the helper must hand back to the Python path, each for its own reason."""
    return {
        "no ProcId": job(5, None),
        "no ClusterId": job(None, 0),
        "expression": classad2.ClassAd("[ClusterId = 2 + 3; ProcId = 0]"),
        "string": job("5", 0),
        "negative": job(-5, 0),
        "negative proc": job(5, -1),
        "real": job(5.0, 0),
        "bool": job(True, 0),
        "undefined": classad2.ClassAd("[ClusterId = undefined; ProcId = 0]"),
        "16 digits": job(10 ** 15, 0),
        "lowercase names": classad2.ClassAd("[clusterid = 5; procid = 0]"),
        "non-ascii value": job(5, 0, Cmd="/bin/café"),
        "non-ascii name": job(5, 0, **{"Größe": 1}),
        "empty": classad2.ClassAd(),
    }


# ------------------------------------------------------------------------------ built

def test_the_extension_is_built() -> None:
    assert encoding._speedups is not None, (
        "condor_restd._speedups is not importable: `pip install -e .` compiles "
        "condor_restd/_speedups.c (setup.py, optional=True); was it built without a compiler?")
    assert {"lower_names", "job_records", "job_listing"} <= set(dir(encoding._speedups))


def test_the_ad_files_are_found() -> None:
    assert {"collector.ads", "jobs-default.ads", "history-default.ads"} <= set(DEMO_FILES)
    assert len(DATA_FILES) >= 5
    assert len(all_ads()) > 150


# ------------------------------------------------------------------------------ lower_names

@pytest.mark.parametrize("name", DEMO_FILES + DATA_FILES)
def test_lower_names_matches_python_on_real_ads(fast: Any, name: str) -> None:
    ads = demo_ads(name) if name in DEMO_FILES else data_ads(DATA / name)
    assert ads
    for ad in ads:
        text = ad.printJson()
        assert fast.lower_names(text) == py_lower(text)
        assert condor.lower_names(text) == py_lower(text)


@pytest.mark.parametrize("name", sorted(SPECIAL))
def test_lower_names_matches_python_on_awkward_ads(fast: Any, name: str) -> None:
    text = special(name).printJson()
    assert text.isascii()
    assert fast.lower_names(text) == py_lower(text)


def test_lower_names_lowercases_names_at_every_depth_and_nothing_else(fast: Any) -> None:
    ad = classad2.ClassAd('[A=1; B=[C=2; D=[E=3]]; F={[G=1],[H=2]}; I={"X","Y"}; J="Val: \\"Q\\""]')
    out = fast.lower_names(ad.printJson())
    assert json.loads(out) == {"a": 1, "b": {"c": 2, "d": {"e": 3}}, "f": [{"g": 1}, {"h": 2}],
                               "i": ["X", "Y"], "j": 'Val: "Q"'}


def test_lower_names_leaves_values_that_look_like_names(fast: Any) -> None:
    ad = special("fake-name")
    out = json.loads(fast.lower_names(ad.printJson()))
    assert out == {"value": '\n  "Fake": 1', "list": ['\n  "Fake": ', 'X": ']}


def test_lower_names_of_quoted_names(fast: Any) -> None:
    out = json.loads(fast.lower_names(special("quoted-names").printJson()))
    assert set(out) == {"has space", "dot.ted", 'quo"te', "back\\", "new\nline", "apos'trophe"}


def test_an_empty_ad_is_an_empty_object(fast: Any) -> None:
    text = classad2.ClassAd().printJson()
    assert fast.lower_names(text) == py_lower(text) == condor.lower_names(text) == "{}"


@pytest.mark.parametrize("ad", [{"Cmd": "/bin/café"}, {"Größe": 1}, {"A": {"Ünter": "x"}}, {"L": ["ok", "日本"]}],
                         ids=["value", "name", "nested-name", "list"])
def test_non_ascii_text_goes_to_python(fast: Any, ad: dict[str, Any]) -> None:
    text = classad2.ClassAd({"Plain": 1, **ad}).printJson()
    assert not text.isascii()
    assert fast.lower_names(text) is None
    assert condor.lower_names(text) == py_lower(text)
    assert json.loads(condor.lower_names(text)) == lowered(json.loads(text))


def test_lower_names_wants_text(fast: Any) -> None:
    with pytest.raises(TypeError):
        fast.lower_names(b'{\n  "A": 1\n}')


# ------------------------------------------------------------------------------ job_records

@pytest.mark.parametrize("name", JOB_FILES)
def test_job_records_of_real_job_ads(fast: Any, name: str) -> None:
    ads = demo_ads(name)
    done = fast.job_records(ads)
    assert len(done) == len(ads)
    for ad, record in zip(ads, done):
        assert record is not None, ad.get("GlobalJobId")
        assert record == py_record(ad) == condor.job_record(ad)
        assert record[0] == condor.job_id(ad)[0]


def check_job_records(fast: Any, ads: Sequence[Any]) -> list[Any]:
    """The helper's job_records: None exactly where the Python path is needed, else its answer."""
    done = fast.job_records(ads)
    assert len(done) == len(ads)
    for ad, record in zip(ads, done):
        assert (record is None) == needs_python(ad)
        if record is not None:
            assert record == py_record(ad)
            assert record[0] == condor.job_id(ad)[0]
    return done


def test_job_records_of_every_ad_found(fast: Any) -> None:
    ads = all_ads()
    done = check_job_records(fast, ads)
    assert sum(record is not None for record in done) >= 100


@pytest.mark.parametrize("reason", sorted(python_only_ads()))
def test_job_records_hands_back_what_python_must_do(fast: Any, reason: str) -> None:
    ad = python_only_ads()[reason]
    assert needs_python(ad)
    assert fast.job_records([ad]) == [None]
    assert condor.job_records([ad]) == [py_record(ad)]


def test_job_records_ignores_ids_of_nested_ads(fast: Any) -> None:
    assert fast.job_records([special("ids-nested-only")]) == [None]
    [(key, record)] = fast.job_records([special("ids")])
    assert key == (12, 3)
    assert record == py_record(special("ids"))[1]
    assert record.startswith(b'{"jobid": "12.3", "classad": {')


def test_job_records_on_a_mixed_list_patches_the_gaps(fast: Any) -> None:
    good = demo_ads("jobs-default.ads")
    bad = list(python_only_ads().values())
    ads = [ad for pair in zip(good, bad) for ad in pair] + good[len(bad):] + [special("nested")]
    done = fast.job_records(ads)
    assert None in done and any(record is not None for record in done)
    expected = [py_record(ad) for ad in ads]
    assert condor.job_records(ads) == [condor.job_record(ad) for ad in ads] == expected


def test_job_records_of_nothing(fast: Any) -> None:
    assert fast.job_records([]) == []
    assert fast.job_records(()) == []


# ------------------------------------------------------------------------------ job_listing

def listing_ads() -> list[Any]:
    """Real job ads, twice over in another order, plus ads sharing an id (told apart by Tag)."""
    ads = [ad for name in JOB_FILES for ad in demo_ads(name)]
    twins = [job(7, 1, Tag=n) for n in range(4)] + [job(0, 0, Tag="first"), job(7, 0, Tag="z")]
    return ads + twins + ads[::-1] + [job(0, 0, Tag="last")]


def check_listing(ads: Sequence[Any], sort: bool, cap: int) -> tuple[bytes, list[int]]:
    got = condor.job_listing(ads, sort, cap)
    assert got is not None
    body, ends = got
    expected_body, expected_ends = py_listing(ads, sort, cap)
    assert body == expected_body
    assert ends == expected_ends
    records = [py_record(ad) for ad in ads]
    if sort:
        records.sort(key=lambda record: record[0])
    start = 2
    for end, (_, record) in zip(ends, records):
        assert body[start:end] == record
        start = end + 2
    assert body[start - 2:] == (b"\n]\n" if ends else b"[]\n")
    return body, ends


@pytest.mark.parametrize("sort", [True, False])
@pytest.mark.parametrize("cap", [0, 1, 2, 5, -1])
def test_job_listing_matches_python(fast: Any, sort: bool, cap: int) -> None:
    ads = listing_ads()
    _, ends = check_listing(ads, sort, cap)
    assert len(ends) == (cap if cap > 0 else len(ads))


@pytest.mark.parametrize("sort", [True, False])
def test_job_listing_caps_at_and_around_the_length(fast: Any, sort: bool) -> None:
    ads = demo_ads("jobs-default.ads")
    for cap in (len(ads) - 1, len(ads), len(ads) + 1, 10 ** 6):
        check_listing(ads, sort, cap)


def test_job_listing_sorts_stably(fast: Any) -> None:
    ads = [job(7, 1, Tag=n) for n in range(6)] + [job(7, 0, Tag="a"), job(3, 9, Tag="b")] + \
          [job(7, 1, Tag=n) for n in range(6, 9)]
    body, _ = check_listing(ads, True, 0)
    listed = json.loads(body)
    assert [entry["jobid"] for entry in listed] == ["3.9", "7.0"] + ["7.1"] * 9
    assert [entry["classad"]["tag"] for entry in listed[2:]] == list(range(9))


def test_job_listing_of_nothing(fast: Any) -> None:
    assert condor.job_listing([], True, 0) == (b"[]\n", [])
    assert condor.job_listing([], False, 5) == (b"[]\n", [])
    assert py_listing([], True, 0) == (b"[]\n", [])


def test_job_listing_of_one(fast: Any) -> None:
    ad = special("ids")
    body, ends = check_listing([ad], True, 0)
    assert body == b"[\n" + py_record(ad)[1] + b"\n]\n"
    assert ends == [len(body) - 3]


@pytest.mark.parametrize("reason", sorted(python_only_ads()))
@pytest.mark.parametrize("where", ["first", "last"])
def test_job_listing_is_none_when_any_ad_needs_python(fast: Any, reason: str, where: str) -> None:
    good = demo_ads("jobs-default.ads")
    bad = python_only_ads()[reason]
    ads = [bad, *good] if where == "first" else [*good, bad]
    assert condor.job_listing(ads, True, 0) is None
    assert condor.job_listing(ads, False, 1) is None  # even when the cap would leave the ad out


def test_job_listing_is_none_without_the_extension() -> None:
    with python_only():
        assert condor.job_listing(demo_ads("jobs-default.ads"), True, 0) is None


@pytest.mark.parametrize("name", JOB_FILES)
def test_job_listing_parses_into_lowercased_records(fast: Any, name: str) -> None:
    ads = demo_ads(name)
    body, _ = check_listing(ads, True, 0)
    listed = json.loads(body)
    assert isinstance(listed, list) and len(listed) == len(ads)
    by_id = {condor.job_id(ad)[1]: ad for ad in ads}
    assert [entry["jobid"] for entry in listed] == [
        "%d.%d" % key for key in sorted(condor.job_id(ad)[0] for ad in ads)]
    for entry in listed:
        assert set(entry) == {"jobid", "classad"}
        assert all(key == key.lower() for key in entry["classad"])
        assert entry["classad"] == lowered(json.loads(by_id[entry["jobid"]].printJson()))
        assert "%d.%d" % (entry["classad"]["clusterid"], entry["classad"]["procid"]) == entry["jobid"]


# ------------------------------------------------------------------------------ the C contract

class Raises:
    def printJson(self) -> str:
        raise RuntimeError("printJson failed")


class Bytes:
    def printJson(self) -> bytes:
        return b'{\n  "ClusterId": 1,\n  "ProcId": 0\n}'


def test_errors_from_print_json_propagate(fast: Any) -> None:
    ads = [*demo_ads("jobs-default.ads"), Raises()]
    with pytest.raises(RuntimeError, match="printJson failed"):
        fast.job_records(ads)
    with pytest.raises(RuntimeError, match="printJson failed"):
        fast.job_listing(ads, True, 0)


def test_print_json_that_is_not_text_goes_to_python(fast: Any) -> None:
    assert fast.job_records([Bytes()]) == [None]
    assert fast.job_listing([Bytes()], True, 0) is None


def test_arguments_are_checked(fast: Any) -> None:
    with pytest.raises(TypeError):
        fast.job_records(42)
    with pytest.raises(TypeError):
        fast.job_listing(42, True, 0)
    with pytest.raises(TypeError):
        fast.job_listing([], True, "0")


def test_no_reference_is_kept_or_lost(fast: Any) -> None:
    ads = [*demo_ads("jobs-default.ads"), *python_only_ads().values()]
    before = [sys.getrefcount(ad) for ad in ads], sys.getrefcount(ads)
    for _ in range(20):
        fast.job_records(ads)
        fast.job_listing(ads, True, 0)
        fast.job_listing(ads[:5], True, 2)
        fast.job_listing(ads[:5], False, 0)
        with contextlib.suppress(RuntimeError):
            fast.job_listing([*ads, Raises()], True, 0)
    assert ([sys.getrefcount(ad) for ad in ads], sys.getrefcount(ads)) == before


# ------------------------------------------------------------------------------ random ads

RESERVED = {"true", "false", "undefined", "error", "is", "isnt", "parent", "my", "target",
            "clusterid", "procid"}
NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True).filter(lambda n: n.lower() not in RESERVED)
TRICKY = ['\n  "Fake": 1', '": ', '\\"', "\\", '\\\\"', '"', "a: b", '\n  "ClusterId": 7,', "/Expr(x)/", ""]
TEXT = st.one_of(
    st.text(alphabet=st.sampled_from(string.printable + '"\\:\x01\x1f\x7f'), max_size=24),
    st.sampled_from(TRICKY),
)
SCALARS = st.one_of(
    st.integers(-(2 ** 63), 2 ** 63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    TEXT,
    st.none(),
)


def members(values: st.SearchStrategy[Any], max_size: int) -> st.SearchStrategy[dict[str, Any]]:
    """Attributes with names unique regardless of case, as in a ClassAd."""
    return st.lists(st.tuples(NAMES, values), max_size=max_size,
                    unique_by=lambda member: member[0].lower()).map(dict)


VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4), members(inner, 4)),
                      max_leaves=10)
GOOD_IDS = st.one_of(st.integers(0, 3), st.integers(0, 10 ** 15 - 1))  # small ones collide: equal ids
BAD_IDS = st.sampled_from([None, 10 ** 15, -1, -7, "3", 2.0, True])


@st.composite
def random_ads(draw: st.DrawFn) -> Any:
    ad = classad2.ClassAd(draw(members(VALUES, 6)))
    for name in ("ClusterId", "ProcId"):
        value = draw(GOOD_IDS) if draw(st.integers(0, 11)) else draw(BAD_IDS)
        if value is not None:
            ad[name] = value
    if draw(st.integers(0, 19)) == 0:
        ad["Note"] = "naïve"
    if draw(st.integers(0, 19)) == 0:
        ad["Expr"] = classad2.ExprTree(draw(st.sampled_from(['Other + 1', 'strcat("a\\n", "\\"B\\": ")'])))
    return ad


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(ads=st.lists(random_ads(), max_size=6), sort=st.booleans(), cap=st.integers(0, 7))
def test_random_ads_give_the_same_bytes_both_ways(ads: list[Any], sort: bool, cap: int) -> None:
    fast = encoding._speedups
    if fast is None:
        pytest.skip("condor_restd._speedups is not built")
    for ad in ads:
        text = ad.printJson()
        assert fast.lower_names(text) == (py_lower(text) if text.isascii() else None)
        assert condor.lower_names(text) == py_lower(text)
    check_job_records(fast, ads)
    assert condor.job_records(ads) == [py_record(ad) for ad in ads]
    assert (condor.job_listing(ads, sort, cap) is None) == any(needs_python(ad) for ad in ads)
    good = [ad for ad in ads if not needs_python(ad)]  # so that every example gets a listing
    body, _ = check_listing(good, sort, cap)
    listed = json.loads(body)
    assert len(listed) == min(cap or len(good), len(good))
    for entry in listed:
        assert set(entry) == {"jobid", "classad"}
        assert all(key == key.lower() for key in entry["classad"])


def test_job_keys_match_job_id_on_every_ad_and_fall_back_where_needed(fast: Any) -> None:
    ads = all_ads()
    small = [condor.project(ad, ["ClusterId", "ProcId"]) for ad in ads]
    odd = classad2.ClassAd({"ClusterId": classad2.ExprTree("1 + 2"), "ProcId": 0})
    for group in (ads, small, [*small, odd, classad2.ClassAd()]):
        expected = [condor.job_id(ad)[0] for ad in group]
        assert condor.job_keys(group) == expected
        done = fast.job_ids(group)
        assert [key for key in done if key is not None] == [
            key for key, ad in zip(expected, group) if not needs_python(ad)]
    with mock.patch.object(encoding, "_speedups", None):
        assert condor.job_keys(small) == [condor.job_id(ad)[0] for ad in small]
