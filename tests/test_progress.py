import io
import time

from rgfield._progress import progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def run(stream, steps: int = 40, pause: float = 0.015) -> str:
    with progress("work", steps, file=stream) as on_step:
        for _ in range(steps):
            time.sleep(pause)
            on_step()
    return stream.getvalue()


def test_a_bar_in_a_log_refreshes_rarely_and_on_a_terminal_often():
    log = run(io.StringIO())
    # created, closed: a log gets the first and the last state, not one line per refresh
    assert log.count("\r") <= 3, log
    assert "40/40" in log
    terminal = run(Terminal())
    assert terminal.count("\r") >= 4, terminal  # ~0.6 s at 10 refreshes per second


def test_the_callback_advances_and_can_change_the_total():
    stream = io.StringIO()
    with progress("pilot", 10, file=stream) as on_step:
        on_step(10)
        on_step(0, 25)
        on_step(15)
    assert "25/25" in stream.getvalue()


def test_a_disabled_bar_writes_nothing():
    stream = io.StringIO()
    with progress("hidden", 5, enabled=False, file=stream) as on_step:
        on_step(5, 10)
    assert stream.getvalue() == ""


def test_the_callback_shows_a_status_beside_the_bar():
    stream = io.StringIO()
    with progress("training", 3, file=stream) as on_step:
        on_step(status="loss 0.5")
        on_step(2, status="loss 0.25")
    assert "loss 0.25" in stream.getvalue()
