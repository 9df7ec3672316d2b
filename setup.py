"""Packaging for condor_restd; the version lives in condor_restd/__init__.py only."""

import re
from pathlib import Path

from setuptools import Extension, find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(r'^__version__ = "([^"]+)"',
                    (HERE / "condor_restd" / "__init__.py").read_text(), re.M).group(1)

TEST = [
    "pytest>=7",
    "requests>=2.25",
    "requests-mock>=1.9",
    "hypothesis>=6",
    "openapi-spec-validator>=0.7",
    "jsonschema>=4.18",
    "schemathesis>=4.0; python_version >= '3.11'",
    "selenium>=4.11",
]

setup(
    name="condor_restd",
    version=VERSION,
    description="A read-only REST API over an HTCondor pool",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.9",
    packages=find_packages(include=["condor_restd", "condor_restd.*"]),
    package_data={"condor_restd": ["demo_data/*", "static/*", "py.typed", "_speedups.pyi"]},
    include_package_data=True,
    install_requires=[
        "htcondor>=10.0.0",
        "CherryPy>=18.0",
        "cheroot>=8.0",
        "PyYAML>=5.1",
        "prometheus_client>=0.17",
        "PyJWT[crypto]>=2.4",
        "cryptography>=3.4",
        "requests>=2.25",
    ],
    extras_require={
        "test": TEST,
        "dev": [*TEST, "mypy>=1.8", "ruff>=0.4", "types-PyYAML", "types-requests"],
    },
    # Optional: without a compiler the same work is done in Python, only slower.
    ext_modules=[Extension("condor_restd._speedups", ["condor_restd/_speedups.c"], optional=True)],
    entry_points={"console_scripts": ["condor_restd = condor_restd.__main__:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Operating System :: POSIX :: Linux",
        "Topic :: System :: Distributed Computing",
    ],
)
