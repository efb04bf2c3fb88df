"""When a FIFO attempt in doubt may still publish: logic/dedup.py's arithmetic, with real items."""

from __future__ import annotations

import pytest
from disa_lambda.logic import clock, dedup
from disa_lambda.models.status import Field

DOUBT = 1_800_000_000.0


def _in_doubt_since(epoch: float) -> dict:
    return {Field.AMBIGUOUS_SINCE: {"S": clock.iso(epoch)}}


def test_an_item_never_in_doubt_has_no_deadline():
    assert dedup.republish_deadline({}) is None
    assert not dedup.too_late(None, DOUBT + 10**6)
    assert dedup.execution_window(DOUBT, None) == {
        "publishLeaseUntil": str(int(DOUBT) + 120),
        "retryInDoubtAt": str(int(DOUBT)),
    }


@pytest.mark.parametrize(
    ("seconds_later", "too_late"),
    [
        (0, False),
        (dedup.REPUBLISH_WITHIN_SECONDS - dedup.START_MARGIN_SECONDS - 1, False),
        (dedup.REPUBLISH_WITHIN_SECONDS - dedup.START_MARGIN_SECONDS, True),
        (3600, True),
    ],
)
def test_an_attempt_in_doubt_may_start_only_while_its_whole_publish_fits_in_the_window(seconds_later, too_late):
    deadline = dedup.republish_deadline(_in_doubt_since(DOUBT))
    assert deadline == DOUBT + dedup.REPUBLISH_WITHIN_SECONDS
    assert dedup.too_late(deadline, DOUBT + seconds_later) is too_late


def test_the_execution_gets_the_deadline_in_the_form_its_choice_state_compares():
    window = dedup.execution_window(DOUBT + 30, DOUBT + dedup.REPUBLISH_WITHIN_SECONDS)
    assert window["republishBy"] == clock.iso(DOUBT + dedup.REPUBLISH_WITHIN_SECONDS)
    assert window["republishBy"].endswith("Z") and clock.epoch(window["republishBy"]) == DOUBT + 230


def test_an_item_is_taken_over_only_once_an_execution_that_took_its_right_can_publish_no_more():
    taken = {Field.PUBLISH_RIGHT_AT: {"S": clock.iso(DOUBT)}}
    assert dedup.may_take_over({}, DOUBT), "no right taken: nothing can still publish"
    assert not dedup.may_take_over(taken, DOUBT + dedup.TAKEOVER_AFTER_SECONDS - 1)
    assert dedup.may_take_over(taken, DOUBT + dedup.TAKEOVER_AFTER_SECONDS)


def test_the_reason_says_when_the_doubt_began_and_what_to_check():
    reason = dedup.too_late_reason(_in_doubt_since(DOUBT))
    assert clock.iso(DOUBT) in reason and "disa.insertId" in reason and "5-minute" in reason


def test_an_abandoned_reason_says_when_the_message_may_have_been_delivered():
    assert dedup.doubt_note({}) == ""
    note = dedup.doubt_note(_in_doubt_since(DOUBT))
    assert note.startswith("; a publish of it may have reached SNS at ") and clock.iso(DOUBT) in note
