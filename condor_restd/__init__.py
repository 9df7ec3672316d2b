"""condor_restd: a read-only REST API over an HTCondor pool."""

__version__ = "1.0.0"
