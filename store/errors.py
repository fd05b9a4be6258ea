"""Errors of the store. Messages name the setting or file at fault; phones are never in them."""

from __future__ import annotations


class StoreError(Exception):
    """Misconfiguration or bad input (HUASHU_DATABASE_URL, a segment file, an import file)."""


class StoreUnavailableError(StoreError):
    """The database cannot be reached right now (results still go to the outbox)."""


class ImportValidationError(StoreError):
    """An import file with bad rows; `problems` are `(line number, message)` pairs."""

    def __init__(self, path: str, problems: list[tuple[int, str]]) -> None:
        self.path = path
        self.problems = problems
        lines = "\n".join(f"{path}:{line}: {msg}" for line, msg in problems[:50])
        more = f"\n… and {len(problems) - 50} more" if len(problems) > 50 else ""
        super().__init__(f"{len(problems)} bad row(s), nothing imported:\n{lines}{more}")


class ExternalIdConflictError(StoreError):
    """An import would give a WeCom `external_userid` that another customer holds in the store;
    `conflicts` are `(external_userid, importing customer, holding customer)`. Nothing imported."""

    def __init__(self, conflicts: list[tuple[str, str, str]]) -> None:
        self.conflicts = conflicts
        lines = "; ".join(f"external_userid {e!r} of customer {c!r} already belongs to customer {h!r}"
                          for e, c, h in conflicts[:20])
        super().__init__(f"{len(conflicts)} external_userid conflict(s), nothing imported: {lines}")
