"""The metrics window of a canary step: router and server counters reset independently."""

from ml_platform.deploy.router import _Counts


def _counts(requests: float, scores: float, score_sum: float, feedback: float,
            url: str = "http://127.0.0.1:9001") -> _Counts:
    return _Counts(requests=requests, errors=0.0, buckets={0.1: requests, float("inf"): requests},
                   score_sum=score_sum, score_count=scores, feedback=feedback,
                   correct=feedback / 2, server_url=url)


def test_a_plain_window_subtracts_the_baseline() -> None:
    window = _counts(150, 150, 60.0, 40).minus(_counts(100, 100, 40.0, 30)).to_metrics()
    assert window.requests == 50 and window.feedback_count == 10
    assert window.mean_score == 20.0 / 50


def test_a_restarted_server_keeps_the_router_window_and_counts_its_scores_from_zero() -> None:
    # the stable server died and came back on another port; the router kept running
    base = _counts(100, 100, 10.0, 60, url="http://127.0.0.1:9001")
    now = _counts(130, 30, 27.0, 9, url="http://127.0.0.1:9002")
    window = now.minus(base).to_metrics()
    assert window.requests == 30  # router counters did not reset
    assert window.mean_score == 27.0 / 30  # only the new process's scores: never negative
    assert window.feedback_count == 9


def test_a_server_restart_on_the_same_url_is_seen_in_its_counters() -> None:
    window = _counts(130, 5, 4.0, 2).minus(_counts(100, 100, 10.0, 60)).to_metrics()
    assert window.mean_score == 4.0 / 5 and window.feedback_count == 2


def test_a_restarted_router_counts_traffic_from_zero() -> None:
    window = _counts(20, 140, 50.0, 40).minus(_counts(100, 100, 40.0, 30)).to_metrics()
    assert window.requests == 20 and window.mean_score == 10.0 / 40
