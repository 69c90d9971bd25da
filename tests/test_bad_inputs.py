"""The catalogue of bad inputs and faults: each gives one clear line (or the named warning) and loses nothing.

Cases live in tests/cases_*.py as lists named CASES; adding one is one line there.
"""
import importlib
import pathlib

import pytest
from catalogue import build_template, judge, make_world

CASE_MODULES = sorted(p.stem for p in pathlib.Path(__file__).parent.glob("cases_*.py"))
CASES = [c for name in CASE_MODULES for c in importlib.import_module(name).CASES]


@pytest.fixture(scope="session")
def template(tmp_path_factory):
    return build_template(tmp_path_factory.mktemp("catalogue_template"))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case(case, template, tmp_path, capfd):
    judge(case, make_world(template, tmp_path), capfd)


def test_case_ids_are_unique():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
