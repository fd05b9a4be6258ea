"""faster-whisper backend on the committed Mandarin set (real model: slow)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from asr import AsrHints, GatedRecognizer, Recognizer, transcribe_bytes
from asr.audio import decode
from asr.metrics import corpus_cer
from asr.normalize import normalize_text
from asr.vad import speech_segments
from asr.whisper_backend import Decoded, WhisperRecognizer, _echoes, _Job, collapse_loops, take_batch
from tests.asr.conftest import AUDIO, manifest, noise_files

pytestmark = pytest.mark.slow


def test_collapse_loops() -> None:
    assert collapse_loops("现在什么价格?现在什么价格?现在什么价格?现在什么价") == "现在什么价格"
    assert collapse_loops("再时不消,再时不消,再时不消,再") == "再时不消"
    assert collapse_loops("好的好的") == "好的"  # the same to the NLU
    assert collapse_loops("晚上8点以后再打晚上8点以后再打") == "晚上8点以后再打"
    assert collapse_loops("138888866") == "138888866"  # digits are never a loop
    assert collapse_loops("我的号码是1862004739") == "我的号码是1862004739"


def test_prompt_echo_is_recognised_but_a_reply_that_is_a_hint_is_not() -> None:
    hints = AsrHints(("好的", "不需要", "不用了", "以下是普通话的句子"))
    prompt = normalize_text("、".join(hints.phrases) + "。")
    assert _echoes("你不需要以下是普通话的句子", prompt, hints, 0.5)
    assert _echoes("不需要不用了", prompt, hints, 0.5)  # doubtful audio: two phrases glued together
    assert not _echoes("不需要不用了", prompt, hints, 0.05)  # clear speech: a customer can say that
    assert not _echoes("不需要", prompt, hints, 0.5)
    assert not _echoes("我不需要谢谢", prompt, hints, 0.5)
    # mostly one phrase, and the model doubts there was speech at all (white noise, seen in CI)
    assert _echoes("你不需要", prompt, hints, 0.6)
    assert not _echoes("你不需要", prompt, hints, 0.1)  # said clearly: a real reply


def _cer(rec: Recognizer, kind: str, with_hints: bool = False) -> tuple[float, list[tuple[str, str]]]:
    m = manifest()
    pairs = []
    for u in m["utterances"]:
        path = AUDIO / kind / f"{u['id']}.wav"
        if not path.exists():
            continue
        hints = AsrHints(tuple(m["nodes"][u["node"]])) if with_hints else None
        t, _ = transcribe_bytes(path.read_bytes(), rec, hints)
        pairs.append((u["text"], t.text))
    return corpus_cer(pairs), pairs


def test_mandarin_clean_and_telephone(whisper: Recognizer) -> None:
    """Loose bounds (bench/asr.py reports the real numbers): speech is recognised, in the
    normalised form, on both the 16 kHz and the 8 kHz mu-law recordings."""
    clean, pairs = _cer(whisper, "clean")
    tel, _ = _cer(whisper, "tel")
    assert clean < 0.25 and tel < 0.35, (clean, tel)
    assert all(hyp for _, hyp in pairs)  # every utterance gives some text
    hyps = dict((ref, hyp) for ref, hyp in pairs)
    assert hyps["明天下午三点再打"] == "明天下午3点再打"  # Arabic numbers, Simplified
    for hyp in hyps.values():
        assert not any(c in hyp for c in "，。？！,.?!")  # no punctuation


def test_hints_do_not_make_it_worse(whisper: Recognizer) -> None:
    plain, _ = _cer(whisper, "clean")
    hinted, _ = _cer(whisper, "clean", with_hints=True)
    assert hinted <= plain


@pytest.mark.parametrize("path", noise_files(), ids=lambda p: p.stem)
def test_silence_and_noise_give_no_text(whisper: Recognizer, path: Path) -> None:
    hints = AsrHints(tuple(manifest()["nodes"]["confirm"]))
    for h in (None, hints):
        t, duration = transcribe_bytes(path.read_bytes(), whisper, h)
        assert t.text == "" and t.confidence == 0.0
        assert duration > 1.0


def test_guards_catch_what_the_vad_lets_through(whisper: Recognizer) -> None:
    """Ungated: Whisper itself on pure noise. Whatever it invents must be dropped by the guards."""
    assert isinstance(whisper, GatedRecognizer)
    backend = whisper.backend
    assert isinstance(backend, WhisperRecognizer)
    rng = np.random.default_rng(7)
    noises = [np.zeros(16000 * 2, np.float32), (rng.standard_normal(16000 * 2) * 0.05).astype(np.float32)]
    for x in noises:
        for hints in (None, AsrHints(("好的", "不需要", "以下是普通话的句子"))):
            d = backend.decode(x, hints)
            assert not d.kept, d


def test_streaming_stream_prepare_then_finish_is_the_same_result(whisper: Recognizer) -> None:
    backend = whisper.backend  # type: ignore[attr-defined]
    pcm = decode((AUDIO / "clean" / "zh22.wav").read_bytes()).pcm
    s = backend.stream()
    for i in range(0, len(pcm), 640):
        assert s.accept(pcm[i : i + 640]) is None
    s.prepare()
    assert s.finish() == backend.transcribe(pcm)


def test_a_batch_takes_the_oldest_job_and_those_that_can_share_its_batch() -> None:
    jobs = [_Job(np.zeros(1, np.float32), None, key) for key in
            [(5, 5.0), (9, 5.0), (5, 5.0), (5, 6.0), (5, 5.0), (9, 5.0)]]
    batch, rest = take_batch(jobs, 8)
    assert batch == [jobs[0], jobs[2], jobs[4]]  # same prompt length and window as the oldest
    assert rest == [jobs[1], jobs[3], jobs[5]]  # the others keep their order
    batch, rest = take_batch(rest, 8)
    assert batch == [jobs[1], jobs[5]] and rest == [jobs[3]]
    assert take_batch(jobs, 2) == ([jobs[0], jobs[2]], [jobs[1], jobs[3], jobs[4], jobs[5]])
    assert take_batch(jobs, 1)[0] == [jobs[0]]
    assert take_batch([], 8) == ([], [])


@pytest.mark.slow
def test_utterances_that_end_together_are_decoded_in_batches_with_the_results_of_one_at_a_time(
        whisper: Recognizer) -> None:
    import threading
    from dataclasses import replace

    backend = whisper.backend  # type: ignore[attr-defined]
    m = manifest()
    by_id = {u["id"]: u for u in m["utterances"]}
    utts = []  # calls at different nodes (different hint prompts), replies of different lengths
    for uid in ("zh15", "zh21", "zh28", "zh40", "zh03", "zh33"):
        pcm = decode((AUDIO / "tel" / f"{uid}.wav").read_bytes(), target_rate=16000).samples.tobytes()
        speech = b"".join(seg.pcm for seg in speech_segments(pcm))
        utts.append((np.frombuffer(speech, "<i2").astype(np.float32) / 32768.0,
                     AsrHints(tuple(m["nodes"][by_id[uid]["node"]]))))
    keys = [(len(backend._prompt(h)[0]), backend._window_s(len(x) / 16000)) for x, h in utts]
    assert len(set(keys)) >= 2 and len(set(keys)) < len(keys)  # some can share a batch, some cannot
    assert len({k[0] for k in keys}) >= 2  # prompts of different lengths: one batch would raise
    config, slots = backend.config, backend._slots
    alone = [backend.decode(x, h) for x, h in utts]
    calls: list[int] = []
    run_batch = backend._run_batch

    def counting(batch, *args):
        calls.append(len(batch))
        return run_batch(batch, *args)

    backend._run_batch = counting
    backend.config = replace(config, num_workers=1, max_batch=8)
    backend._slots = threading.Semaphore(1)
    together: list[Decoded | None] = [None] * len(utts)

    def one(k: int) -> None:
        together[k] = backend.decode(*utts[k])

    try:
        backend._slots.acquire()  # the decoder is busy until every utterance has queued up
        threads = [threading.Thread(target=one, args=(k,)) for k in range(len(utts))]
        for t in threads:
            t.start()
        while len(backend._queue) < len(utts):
            threading.Event().wait(0.01)
        backend._slots.release()
        for t in threads:
            t.join()
    finally:
        del backend._run_batch
        backend.config, backend._slots = config, slots
    assert sorted(calls, reverse=True) == sorted((keys.count(k) for k in set(keys)), reverse=True)
    assert [d.text if d else None for d in together] == [d.text for d in alone]
    assert all(d is not None and d.window_s == a.window_s for d, a in zip(together, alone, strict=True))
