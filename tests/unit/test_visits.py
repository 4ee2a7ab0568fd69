"""Visits: one per named person across their tracks, one per unknown track; ended by frame time."""

from __future__ import annotations

from facegate.service.visits import Presence

BOX = (1.0, 2.0, 30.0, 40.0)


def test_a_persons_tracks_share_one_visit_until_out_of_sight_for_leave_after_s() -> None:
    presence = Presence(leave_after_s=5.0)
    visit, new = presence.see("ann", 2, BOX, 100.0, 0.61)
    assert new
    again, new = presence.see("ann", 6, BOX, 103.0, 0.70)  # the tracker lost and found her
    assert again is visit and not new and visit.track_id == 6 and visit.similarity == 0.70
    assert presence.expire(107.9) == []  # 4.9 s since last seen
    assert presence.expire(108.0) == [visit]  # 5.0 s: gone
    assert presence.visits() == []
    back, new = presence.see("ann", 9, BOX, 120.0)
    assert new and back.id != visit.id  # a new visit


def test_unknown_visits_are_one_per_track() -> None:
    presence = Presence(leave_after_s=5.0)
    first, _ = presence.see(None, 3, BOX, 10.0)
    second, new = presence.see(None, 4, BOX, 10.0)
    assert new and first.id != second.id
    presence.see(None, 3, BOX, 12.0)
    assert presence.expire(15.0) == [second] and presence.expire(17.0) == [first]


def test_force_ends_every_visit() -> None:
    presence = Presence()
    presence.see("ann", 1, BOX, 0.0)
    presence.see(None, 2, BOX, 0.0)
    assert {v.person for v in presence.expire(0.1, force=True)} == {"ann", None}


def test_a_handed_over_presence_keeps_visits_and_detaches_old_track_ids() -> None:
    presence = Presence(leave_after_s=5.0)
    ann, _ = presence.see("ann", 1, BOX, 0.0)
    stranger, _ = presence.see(None, 2, BOX, 0.0)
    taken = presence.handover(leave_after_s=8.0)
    assert taken.leave_after_s == 8.0 and len(taken.visits()) == 2
    visit, new = taken.see("ann", 1, BOX, 4.0)  # the new pipeline's track 1
    assert visit is ann and not new
    visit, new = taken.see(None, 2, BOX, 4.0)  # the new tracker's track 2 is someone else
    assert new and visit is not stranger
    assert taken.expire(8.0) == [stranger]  # the old stranger can only leave
