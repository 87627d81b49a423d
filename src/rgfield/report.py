"""Former home of the validation report, now :mod:`rgfield.compare`; re-exported while
:mod:`rgfield.cli.demo` imports it from here."""

from rgfield.compare import summary, write_report

__all__ = ["summary", "write_report"]
