"""The rank-classification decision shared by evaluation, ensembles, prompt design, the API and the server."""
import pytest

from softprompt.core.scoring import best_option


def test_best_option_is_the_highest_score_and_the_first_on_a_tie():
    assert best_option([-3.0, -1.0, -2.0]) == 1
    assert best_option([-1.0, -1.0]) == 0
    assert best_option([float("-inf"), -50.0]) == 1


def test_best_option_without_scores_is_an_error():
    with pytest.raises(ValueError, match="no option"):
        best_option([])
