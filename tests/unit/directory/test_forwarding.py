"""The forwarding graph walk: copies and depth as delivery makes them, loops cut, caps named."""

from __future__ import annotations

from mailward.directory.forwarding import ForwardLimits, check, expand

LIMITS = ForwardLimits(max_copies=10, max_depth=3)


def test_copies_multiply_along_every_chain() -> None:
    graph = {"a": ("b", "c"), "b": ("x", "y"), "c": ("b",)}
    found = expand(graph, "a", stop_after=100, max_depth=10)
    # a→b, a→c, b→x, b→y, c→b, (c→)b→x, (c→)b→y
    assert (found.copies, found.depth, found.deepest) == (7, 3, ("a", "c", "b"))
    assert expand(graph, "x", stop_after=100, max_depth=10).copies == 0  # not a forwarder


def test_a_loop_costs_its_copy_but_goes_no_further() -> None:
    graph = {"a": ("b",), "b": ("a", "z")}
    found = expand(graph, "a", stop_after=100, max_depth=10)
    assert (found.copies, found.depth) == (3, 2)
    # addresses the message already passed (Delivered-To) are not walked into either
    assert expand(graph, "b", stop_after=100, max_depth=10, exclude={"a"}).copies == 2


def test_counting_stops_past_the_limit() -> None:
    graph = {f"n{i}": (f"n{i + 1}", f"m{i + 1}") for i in range(40)}
    found = expand(graph, "n0", stop_after=25, max_depth=100)
    assert (found.copies, found.complete) == (26, False)


def test_check_names_the_chain() -> None:
    deep = {"a": ("b",), "b": ("c",), "c": ("d",), "d": ("e",)}
    reason = check(deep, ["a"], LIMITS)
    assert reason is not None and reason.startswith("a → b → c → d → ... exceeds the "
                                                    "forwarding depth 3")
    wide = {"h": ("p", "q"), "p": tuple(f"x{i}" for i in range(5)),
            "q": tuple(f"y{i}" for i in range(5))}
    reason = check(wide, ["h"], LIMITS)
    assert reason is not None and reason.startswith("h fans out to 12 copies (limit 10): h → p,q")
    assert check(wide, ["p", "q"], LIMITS) is None
