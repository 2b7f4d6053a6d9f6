"""The conformance kit must pass good processors and name what is wrong with bad ones."""

import numpy as np
import pytest

import asr_lab
from asr_lab.testing import ConformanceError, TimelineASR, check_processor, words_from_text

SR = 16000
WORDS = words_from_text("one two three four five six seven eight nine ten", pause_every=3)
AUDIO = TimelineASR.stream_audio(WORDS[-1][1] + 0.5)


def la_processor():
    return asr_lab.OnlineASRProcessor(TimelineASR(WORDS, unstable_tail_sec=0.3), min_chunk_sec=0.5)


class FixedWindow:
    """Stand-in native engine: commits one segment per full second of audio."""

    def __init__(self):
        self.init()

    def init(self, offset=0.0):
        self.offset, self.pending, self.done = offset, 0, 0

    def insert_audio_chunk(self, audio):
        self.pending += len(audio)

    def process_iter(self):
        if self.pending - self.done >= SR:
            start = self.offset + self.done / SR
            self.done += SR
            return (start, start + 1.0, "second")
        return None

    def finish(self):
        if self.pending > self.done:
            start = self.offset + self.done / SR
            self.done = self.pending
            return (start, self.offset + self.pending / SR, "rest")
        return None


def test_localagreement_over_a_timeline_passes():
    report = check_processor(la_processor, AUDIO)
    report.assert_ok()
    assert report.has_partial
    assert "chunks of 10 ms" in report.outputs and "re-init at offset 1000 s" in report.outputs
    words = " ".join(o[2] for o in report.outputs["chunks of 250 ms"]).split()
    assert words == [w[2] for w in WORDS]
    assert min(o[0] for o in report.outputs["re-init at offset 1000 s"]) >= 1000


def test_a_good_native_processor_passes_and_the_report_renders():
    report = check_processor(FixedWindow(), AUDIO)
    assert report.ok, str(report)
    assert "PASS" in str(report) and "<table>" in report._repr_html_()
    assert list(report.to_dataframe().columns) == ["name", "passed", "detail", "seconds"]


class ForgetsOffset(FixedWindow):
    def init(self, offset=0.0):
        super().init(0.0)


class Overlaps(FixedWindow):
    def process_iter(self):
        out = super().process_iter()
        return None if out is None else (out[0] - 0.5, out[1], out[2])


class BeyondAudio(FixedWindow):
    def finish(self):
        out = super().finish()
        return None if out is None else (out[0], out[1] + 3.0, out[2])


class Stale(FixedWindow):
    """Does not reset on init: leftover audio leaks into the next stream."""

    def init(self, offset=0.0):
        if not hasattr(self, "pending"):
            super().init(offset)
        self.offset = offset


class RaisesOnSilence(FixedWindow):
    def insert_audio_chunk(self, audio):
        if len(audio) and not np.any(audio):
            raise RuntimeError("cannot handle digital silence")
        super().insert_audio_chunk(audio)


class EmptyText(FixedWindow):
    def process_iter(self):
        out = super().process_iter()
        return None if out is None else (out[0], out[1], "")


class ListAnswer(FixedWindow):
    def finish(self):
        out = super().finish()
        return None if out is None else list(out)


class NanTimes(FixedWindow):
    def process_iter(self):
        out = super().process_iter()
        return None if out is None else (float("nan"), out[1], out[2])


class Mute(FixedWindow):
    def process_iter(self):
        return None

    def finish(self):
        return None


@pytest.mark.parametrize(
    "cls, failing, words",
    [
        (ForgetsOffset, "re-init at offset 1000 s", "outside the audio fed"),
        (Overlaps, "chunks of 10 ms", "overlaps"),
        (BeyondAudio, "chunks of 10 ms", "outside the audio fed"),
        (Stale, "re-init starts clean", "after re-init"),
        (RaisesOnSilence, "2 s of silence", "raised RuntimeError: cannot handle digital silence"),
        (EmptyText, "chunks of 10 ms", "return None when there is nothing"),
        (ListAnswer, "chunks of 10 ms", "expected None or a tuple"),
        (NanTimes, "chunks of 10 ms", "not finite"),
        (Mute, "chunks of 10 ms: finish flushes", "no text at all"),
    ],
)
def test_broken_processors_fail_with_the_reason(cls, failing, words):
    report = check_processor(cls, AUDIO)
    assert not report.ok
    failed = {c.name: c.detail for c in report.failures}
    assert any(name.startswith(failing) and words in detail for name, detail in failed.items()), str(report)
    with pytest.raises(ConformanceError, match="FAIL"):
        report.assert_ok()


def test_missing_methods_stop_early():
    class Half:
        def init(self, offset=0.0):
            pass

    report = check_processor(Half(), AUDIO)
    assert not report.ok and "missing: insert_audio_chunk, process_iter, finish" in str(report)


def test_nondeterministic_processor_can_opt_out_of_the_same_answers_check():
    class Jitter(FixedWindow):
        n = 0

        def process_iter(self):
            out = super().process_iter()
            Jitter.n += 1
            return None if out is None else (out[0], out[1], f"second{Jitter.n}")

    assert not check_processor(Jitter, AUDIO).ok
    assert check_processor(Jitter, AUDIO, deterministic=False).ok


# ---------------------------------------------------------------- the default sample has pauses


class PauseSegmenter:
    """Stand-in native engine on real audio: commits one segment per stretch of speech, at each
    pause of 0.4 s (frame energy), like an endpointing recogniser. Its text is a placeholder."""

    frame = SR // 100

    def __init__(self):
        self.init()

    def init(self, offset=0.0):
        self.offset, self.audio = offset, np.zeros(0, np.float32)
        self.seg_start, self.done, self.silent = None, 0, 0  # samples

    def insert_audio_chunk(self, audio):
        self.audio = np.concatenate([self.audio, np.asarray(audio, np.float32)])

    def _segment(self, start, end):
        return self._times(start, end) + ("speech",)

    def _times(self, start, end):
        return (self.offset + start / SR, self.offset + end / SR)

    def process_iter(self):
        return self._scan()

    def _scan(self):
        out = None
        while self.done + self.frame <= len(self.audio):
            loud = np.sqrt(np.mean(self.audio[self.done : self.done + self.frame] ** 2)) > 0.01
            self.done += self.frame
            if loud:
                self.seg_start = self.done - self.frame if self.seg_start is None else self.seg_start
                self.silent = 0
            elif self.seg_start is not None:
                self.silent += self.frame
                if self.silent >= 0.4 * SR and out is None:
                    out = self._segment(self.seg_start, self.done - self.silent)
                    self.seg_start = None
        return out

    def finish(self):
        out = self._scan()
        if out is None and self.seg_start is not None:
            out, self.seg_start = self._segment(self.seg_start, self.done - self.silent), None
        return out


class OverlappingSegments(PauseSegmenter):
    """Forgets to move its segment start: every segment spans from the stream start."""

    def _times(self, start, end):
        return (self.offset, self.offset + end / SR)


class NewestFirst(PauseSegmenter):
    """Holds a segment until the next one is found, then returns the newer one first."""

    def init(self, offset=0.0):
        super().init(offset)
        self.held, self.unwinding = [], False

    def process_iter(self):
        out = self._scan()
        if out is not None:
            self.held.append(out)
        if len(self.held) >= 2:
            self.unwinding = True
            return self.held.pop()
        if self.unwinding and self.held:
            self.unwinding = False
            return self.held.pop()
        return None

    def finish(self):
        out = PauseSegmenter.finish(self)
        if out is not None:
            self.held.append(out)
        return self.held.pop() if self.held else None


def test_pause_segmenter_passes_on_the_default_sample():
    from asr_lab.testing import sample_speech

    sample = sample_speech("pauses")
    assert 10.0 <= len(sample.audio) / SR <= 15.0 and sample.text.count(".") == 3
    assert len(sample.words) == len(sample.text.split()) and sample.path.stat().st_size < 250_000
    starts = [w[0] for w in sample.words]
    assert starts == sorted(starts) and sample.words[-1][1] <= len(sample.audio) / SR
    gaps = [b[0] - a[1] for a, b in zip(sample.words, sample.words[1:])]
    assert sum(g >= 0.8 for g in gaps) == 2  # the two pauses between the sentences
    report = check_processor(PauseSegmenter, chunk_sizes=(0.1, 1.0))
    report.assert_ok()
    assert len(report.outputs["chunks of 100 ms"]) == 3  # one segment per sentence


@pytest.mark.parametrize("cls, words", [(OverlappingSegments, "process_iter overlaps"), (NewestFirst, "went back in time")])
def test_segment_order_bugs_fail_on_the_default_sample_but_hid_in_one_sentence(cls, words):
    from asr_lab.testing import sample_speech

    one_sentence = sample_speech("sample").audio  # the kit's old default: one segment, nothing to compare
    assert check_processor(cls, one_sentence, chunk_sizes=(0.1, 1.0)).ok
    report = check_processor(cls, chunk_sizes=(0.1, 1.0))
    assert not report.ok
    first = report.failures[0]
    assert first.name == "chunks of 100 ms" and words in first.detail, str(report)
    assert first.detail.count(words) == 1  # once, with its count when it happened more often
    if cls is OverlappingSegments:
        assert "(×2 in this run)" in first.detail
    later = {c.name: c.detail for c in report.failures}["chunks of 1 s"]
    assert "again ×" in later and "as in 'chunks of 100 ms'" in later, later


def test_whisper_streamings_nothing_is_accepted():
    class SaysNothingTheOldWay(FixedWindow):
        def process_iter(self):
            return super().process_iter() or (None, None, "")

        def finish(self):
            return super().finish() or (None, None, "")

    report = check_processor(SaysNothingTheOldWay, AUDIO)
    assert report.ok, str(report)


def test_no_text_is_told_from_no_valid_segment():
    class OnlyBadTimes(FixedWindow):
        def process_iter(self):
            out = super().process_iter()
            return None if out is None else (out[0] + 100.0, out[1] + 100.0, out[2])

        def finish(self):
            out = super().finish()
            return None if out is None else (out[0] + 100.0, out[1] + 100.0, out[2])

    bad = {c.name: c.detail for c in check_processor(OnlyBadTimes, AUDIO).failures}
    assert "no valid segment" in bad["chunks of 10 ms: finish flushes"] and "rejected" in bad["chunks of 10 ms: finish flushes"]
    mute = {c.name: c.detail for c in check_processor(Mute, AUDIO).failures}
    assert mute["chunks of 10 ms: finish flushes"].startswith("no text at all")
