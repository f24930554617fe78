from agent.reported import ReportedProperties

ACK = {"value": 5.0, "ac": 200, "av": 3, "ad": "applied"}


def test_offline_changes_merge_into_one_patch() -> None:
    """Test that several changes of one key leave only the last to send."""
    reported = ReportedProperties()

    reported.set({"sensor": {"state": "degraded"}})
    reported.set({"sensor": {"state": "ok"}, "unit": ACK})

    assert reported.pending == {"sensor": {"state": "ok"}, "unit": ACK}


def test_sent_patch_is_forgotten_unless_changed_since() -> None:
    """Test that a change made during a send stays pending."""
    reported = ReportedProperties()
    reported.set({"a": 1, "b": 2})
    sending = reported.pending
    reported.set({"b": 3})

    reported.sent(sending)

    assert reported.pending == {"b": 3}


def test_reconcile_resends_what_the_hub_lost() -> None:
    """Test that after a twin GET only differences are queued."""
    reported = ReportedProperties({"unit": ACK, "sensor": {"state": "ok"}})

    reported.reconcile({"$version": 4, "sensor": {"state": "ok"}})

    assert reported.pending == {"unit": ACK}


def test_reconcile_deletes_acks_nobody_owns() -> None:
    """Test that stale acknowledgements in the twin are deleted."""
    reported = ReportedProperties({"unit": ACK})

    reported.reconcile({"unit": ACK, "colour": {"ac": 400, "av": 2}, "note": "x"})

    assert reported.pending == {"colour": None}


def test_null_deletes_from_the_picture() -> None:
    """Test that reporting None removes the key and sends a deletion."""
    reported = ReportedProperties({"colour": {"ac": 400}})

    reported.set({"colour": None})

    assert reported.wanted == {}
    assert reported.pending == {"colour": None}


def test_give_up_drops_refused_keys() -> None:
    """Test that a key the hub refuses leaves both the picture and the buffer."""
    reported = ReportedProperties()
    reported.set({"big": "x" * 10, "ok": 1})

    reported.give_up(["big"])

    assert reported.wanted == {"ok": 1}
    assert reported.pending == {"ok": 1}
