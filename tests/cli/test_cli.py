"""The command line's own behaviour: version, cache folder, errors, vocabulary, progress."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

import benchmarks.run as bench_run
from jaxsample import __version__
from jaxsample.cli import CACHE_ENV, cache_dir, main
from jaxsample.model import load_pretrained
from jaxsample.progress import Progress
from jaxsample.training import TrainConfig


def _one_error_line(capsys: pytest.CaptureFixture[str], command: str) -> str:
    err = capsys.readouterr().err.splitlines()
    lines = [ln for ln in err if "compiling (first run only" not in ln]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"jaxsample {command}: error: ")
    return lines[0]


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"jaxsample {__version__}"


def test_cache_dir_follows_the_environment() -> None:
    home = Path.home()
    assert cache_dir({}) == home / ".cache" / "jaxsample" / "jax"
    assert cache_dir({"XDG_CACHE_HOME": "/xdg"}) == Path("/xdg/jaxsample/jax")
    assert cache_dir({CACHE_ENV: "/elsewhere", "XDG_CACHE_HOME": "/xdg"}) == Path("/elsewhere")
    for off in ("off", "OFF", "0", "none", "false", "no", "", "  "):
        assert cache_dir({CACHE_ENV: off}) is None


def test_os_errors_are_one_line_with_path_and_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    assert main(["train", "--out", str(a_file / "run"), "--size", "tiny", "--steps", "2"]) == 2
    line = _one_error_line(capsys, "train")
    assert str(a_file) in line and ("Not a directory" in line or "exists" in line)
    assert main(["lab", "simulator", "--out", str(a_file / "lab")]) == 2
    line = _one_error_line(capsys, "lab")
    assert str(a_file) in line and ("Not a directory" in line or "exists" in line)

    # A read-only folder (simulated: the tests may run as root, who can write anywhere).
    def refuse(*_: Any, **__: Any) -> None:
        raise PermissionError(13, "Permission denied", "/read-only/run")

    monkeypatch.setattr("jaxsample.training.commands.train", refuse)
    assert main(["train", "--out", "/read-only/run", "--size", "tiny", "--steps", "2"]) == 2
    assert _one_error_line(capsys, "train").endswith("/read-only/run: Permission denied")


def test_warmup_steps_flag_and_default_scale_with_steps(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert TrainConfig.for_size("small").warmup_steps == 100
    assert TrainConfig.for_size("small", steps=500).warmup_steps == 50
    assert TrainConfig.for_size("tiny", steps=5).warmup_steps == 0
    assert TrainConfig.for_size("tiny", steps=50, warmup_steps=7).warmup_steps == 7
    args = ["train", "--out", str(tmp_path / "r"), "--size", "tiny", "--steps", "5"]
    assert main([*args, "--warmup-steps", "9"]) == 2
    assert _one_error_line(capsys, "train").endswith("--warmup-steps (9) must be < --steps (5)")
    # A short run needs no warm-up flag, and its progress reaches a non-terminal stderr.
    assert main([*args, "--warmup-steps", "1"]) == 0
    captured = capsys.readouterr()
    assert "train tiny: 5/5 steps (100%)" in captured.err
    assert "step 5/5" in captured.out


def test_progress_lines_without_a_terminal() -> None:
    stream = io.StringIO()
    with Progress(total=4, desc="demo", unit="items", interval=0.0, stream=stream) as bar:
        for i in range(4):
            bar.update(1, loss=f"{i}.0")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 4
    assert lines[0].startswith("demo: 1/4 items (25%), ") and lines[0].endswith("loss=0.0")
    assert lines[-1].startswith("demo: 4/4 items (100%), ")
    # A long interval: no line until the end, then exactly one.
    stream = io.StringIO()
    with Progress(total=None, desc="demo", interval=3600.0, stream=stream) as bar:
        bar.update(3)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("demo: 3 steps, ")
    # Disabled: nothing at all.
    stream = io.StringIO()
    with Progress(total=2, desc="demo", enabled=False, interval=0.0, stream=stream) as bar:
        bar.update(2)
    assert stream.getvalue() == ""


def test_vocab_command(capsys: pytest.CaptureFixture[str]) -> None:
    vocab = load_pretrained().tokenizer.vocab
    assert main(["vocab"]) == 0
    assert capsys.readouterr().out.splitlines() == list(vocab)
    assert main(["vocab", "--words-only"]) == 0
    words = capsys.readouterr().out.splitlines()
    assert "<pad>" not in words and "Tomorrow" in words and len(words) == len(vocab) - 4


def test_unknown_words_name_case_and_closest_words(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", "tomorrow she,"]) == 2
    line = _one_error_line(capsys, "generate")
    assert "['tomorrow', 'she,']" in line and "case-sensitive" in line
    assert "'tomorrow': did you mean 'Tomorrow'" in line
    assert "'she,': did you mean 'she'" in line


def test_unknown_arguments_get_the_command_usage_and_a_hint(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def error(argv: list[str]) -> str:
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith(f"usage: jaxsample {argv[0]} ")  # the command's usage
        return err.splitlines()[-1]

    # An unquoted prompt of two words: the second is left over.
    line = error(["generate", "Tomorrow", "she", "--temperature", "0"])
    assert line.startswith("jaxsample generate: error: unrecognized arguments: she; ")
    assert 'quote it, e.g. "Tomorrow she"' in line
    # Misspelt options get the closest one; the value after one is not a prompt word.
    line = error(["lab", "simulator", "--quik"])
    assert line.endswith("unrecognized arguments: --quik; did you mean --quick?")
    line = error(["generate", "--temprature", "0.5", "Tomorrow"])
    assert line.endswith("--temprature Tomorrow; did you mean --temperature?")
    line = error(["generate", "Tomorrow she", "--completions", "3"])
    assert line.endswith("unrecognized arguments: --completions 3")
    # -n is --n.
    assert main(["generate", "Tomorrow she", "-n", "2", "--temperature", "0"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0] == lines[1] and lines[0].startswith("Tomorrow she ")


def test_generate_help_and_numbers_as_typed(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "32 tokens" in help_text and "empty prompt" in help_text
    assert main(["generate", "Tomorrow she", "--top-p", "0"]) == 2
    assert _one_error_line(capsys, "generate").endswith("got 0")
    assert main(["generate", "Tomorrow she", "--temperature=-1e-3"]) == 2
    assert _one_error_line(capsys, "generate").endswith("got -1e-3")
    with pytest.raises(SystemExit):
        main(["generate", "Tomorrow she", "--top-p", "abc"])
    assert "expected a number, got 'abc'" in capsys.readouterr().err


def test_empty_prompt_generates_from_bos(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", "", "--temperature", "0"]) == 0
    text = capsys.readouterr().out.strip()
    assert text and text.split()[0][0].isupper()


def test_a_completion_that_ends_at_once_gets_a_note(capsys: pytest.CaptureFixture[str]) -> None:
    # The shipped Mini-GPT ends "the cat" at once (<eos> with probability ~1): the line is
    # the prompt alone, and stderr says why and what to do.
    assert main(["generate", "the cat", "--temperature", "0"]) == 0
    out, err = capsys.readouterr()
    assert out == "the cat\n"
    assert "ended at once" in err and "--min-new-tokens" in err
    assert main(["generate", "the cat", "--temperature", "0", "--min-new-tokens", "1"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("the cat ") and len(out.split()) > 2 and "ended at once" not in err
    # With --logprobs the drawn <eos> is shown by name (it decodes to no text).
    assert main(["generate", "the cat", "--temperature", "0", "--logprobs", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "the cat" and lines[1].split()[:2] == ["0", "<eos>"]


def test_benchmark_smoke_never_writes_into_the_committed_results(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[Path] = []

    def fake_run(smoke: bool, out: Path, **_: Any) -> dict[str, Any]:
        seen.append(out)
        return {}

    monkeypatch.setattr(bench_run, "run", fake_run)
    monkeypatch.setattr(bench_run.report, "markdown", lambda _: "")
    assert bench_run.main(["--smoke"]) == 0
    results = Path(bench_run.__file__).resolve().parent / "results"
    assert seen and results not in seen[0].resolve().parents and seen[0].is_dir()
    assert bench_run.main(["--smoke", "--out", "/tmp/given"]) == 0
    assert seen[-1] == Path("/tmp/given")
    assert "written to" in capsys.readouterr().out


def test_numbers_in_messages_read_as_written() -> None:
    import numpy as np

    from jaxsample.decoding import make_strategy

    with pytest.raises(ValueError, match=r"got 0\.0$"):
        make_strategy(1.0, 0, np.float64(0.0))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"learning_rate must be a finite float >= 0, got -1\.0$"):
        TrainConfig.for_size("tiny", learning_rate=np.float64(-1.0))
    with pytest.raises(ValueError, match=r"steps must be an int >= 1, got '5'$"):
        TrainConfig.for_size("tiny", steps="5")
