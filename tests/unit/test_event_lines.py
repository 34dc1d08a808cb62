"""An event's headless line is what `dataclasses.asdict` gave, built without its deep copy."""

from __future__ import annotations

from dataclasses import asdict

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.user.events import EVENT_NAMES, Event


def by_asdict(event: Event) -> dict:
    body = asdict(event)
    if "from_" in body:
        body["from"] = body.pop("from_")
    if "group" in body and body["group"] is None:
        del body["group"]
    if "reply_to" in body and body["reply_to"] is None:
        del body["reply_to"]
    return {"event": EVENT_NAMES[type(event)], **body}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(EVENT_NAMES, key=lambda c: c.__name__)).flatmap(st.from_type))
def test_every_events_line_is_what_asdict_gave(event):
    assert event.to_json() == by_asdict(event)
