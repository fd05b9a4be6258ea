"""`huashu serve --workers N` opens the store from N processes at once on a fresh data dir."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path
from typing import Any

from core.settings import Settings


def _open(data_dir: str, barrier: Any, out: Any) -> None:
    from store import open_store

    barrier.wait()  # all processes hit the fresh database together
    try:
        store = open_store(Settings(data_dir=Path(data_dir)))
        out.put(("ok", store.keys.fingerprint))
        store.close()
    except Exception as exc:  # reported to the test, which names it
        out.put(("error", f"{type(exc).__name__}: {exc}"))


def test_concurrent_first_opens_of_a_fresh_sqlite_store_all_succeed(tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    n = 4
    barrier, out = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_open, args=(str(tmp_path / "data"), barrier, out)) for _ in range(n)]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
    assert [r for r in results if r[0] != "ok"] == []
    # one phone key for everyone (a second key would make the later openers refuse the database)
    assert len({r[1] for r in results}) == 1
    assert (tmp_path / "data" / "phone.key").read_text().strip()
