"""The broadcast tree core (Plumtree), without sockets: a simulated mesh of cores passing what
each returns to the others, with the time passed by hand."""

from __future__ import annotations

from node.seed import broadcast
from node.seed.broadcast import GRAFT_AFTER, IHAVE_DELAY, Broadcast, Out, item_id


class Net:
    """Cores linked as given, delivering what they send at once (or dropping it on a dead link)."""

    def __init__(
        self, keys: list[str], links: list[tuple[str, str]], flood: set[str] = frozenset()
    ):
        self.nodes = {k: Broadcast(k) for k in keys}
        self.flood = set(flood)
        self.now = 0.0
        self.got: dict[str, int] = dict.fromkeys(keys, 0)
        self.dups: dict[str, int] = dict.fromkeys(keys, 0)
        self.ids: dict[str, int] = dict.fromkeys(keys, 0)
        self.held: dict[str, set[str]] = {k: set() for k in keys}
        self.queue: list[tuple[str, Out]] = []
        for a, b in links:
            self.link(a, b)

    def link(self, a: str, b: str) -> None:
        tree = a not in self.flood and b not in self.flood
        self.nodes[a].link_up(b, tree)
        self.nodes[b].link_up(a, tree)

    def cut(self, a: str, b: str) -> None:
        self.queue.append((a, self.nodes[a].link_down(b)))
        self.queue.append((b, self.nodes[b].link_down(a)))
        self.run()

    def change(self, at: str, text: str) -> None:
        self.held[at].add(text)
        self.queue.append((at, self.nodes[at].spread([("records", text, 1, None)], self.now)))
        self.run()

    def deliver(self, src: str, dst: str, items: list[broadcast.Item]) -> None:
        node = self.nodes[dst]
        if src not in node.peers:
            return
        self.got[dst] += len(items)
        fresh, dups = [], 0
        for kind, text, rev in items:
            if text in self.held[dst]:
                dups += 1
            else:
                fresh.append((kind, text, rev, src))
                self.held[dst].add(text)
        self.dups[dst] += dups
        if dst in self.flood:  # a flooding seed forwards what is new to every other link
            for peer in node.peers:
                if peer != src:
                    self.deliver(dst, peer, [(k, t, r) for k, t, r, _ in fresh])
            return
        self.queue.append((dst, node.spread(fresh, self.now)))
        self.queue.append((dst, node.received(src, dups)))

    def run(self) -> None:
        while self.queue:
            src, out = self.queue.pop(0)
            for dst, items in out.eager.items():
                self.deliver(src, dst, items)
            for dst, ids in out.ihave.items():
                if src in self.nodes[dst].peers:
                    self.ids[dst] += len(ids)
                    self.nodes[dst].announced(src, ids, self.now)
            for dst, ids in out.graft.items():
                if src in self.nodes[dst].peers:
                    self.deliver(dst, src, self.nodes[dst].grafted(src, ids))
            for dst in out.prune:
                if src in self.nodes[dst].peers:
                    self.queue.append((dst, self.nodes[dst].pruned(src)))

    def advance(self, seconds: float) -> None:
        """Let time pass in small steps, ticking every core."""
        end = self.now + seconds
        while self.now < end:
            self.now = round(self.now + 0.1, 3)
            for key, node in self.nodes.items():
                self.queue.append((key, node.tick(self.now)))
            self.run()

    def everywhere(self, text: str) -> bool:
        return all(text in held for held in self.held.values())


def complete(n: int, flood: set[str] = frozenset()) -> Net:
    keys = [f"k{i}" for i in range(n)]
    return Net(keys, [(a, b) for i, a in enumerate(keys) for b in keys[i + 1 :]], flood)


def test_the_first_change_floods_and_prunes_a_tree_then_each_change_comes_once():
    net = complete(8)
    net.change("k0", "first")
    assert net.everywhere("first")
    assert sum(net.dups.values()) > 0  # every link started eager
    eager = sum(p.eager for n in net.nodes.values() for p in n.peers.values())
    assert eager == 2 * 7  # a spanning tree: each of its 7 links eager on both ends
    before = dict(net.got)
    for i in range(1, 41):
        net.change(f"k{i % 8}", f"c{i}")
        net.advance(IHAVE_DELAY)
    for key in net.nodes:
        others = sum(1 for i in range(1, 41) if f"k{i % 8}" != key)
        assert net.got[key] - before[key] == others
    assert all(net.everywhere(f"c{i}") for i in range(1, 41))


def test_ids_go_to_a_few_lazy_links_and_cost_little():
    net = complete(8)
    net.change("k0", "first")
    net.advance(GRAFT_AFTER + 1)
    announced, dups = dict(net.ids), sum(net.dups.values())
    net.change("k3", "second")
    net.advance(IHAVE_DELAY + 0.1)
    sent = sum(net.ids.values()) - sum(announced.values())
    assert 0 < sent <= broadcast.LAZY_FANOUT * 8  # not 8 x 6
    net.advance(GRAFT_AFTER + 1)
    assert sum(net.dups.values()) == dups  # nothing was missing, so nothing was grafted
    assert all(not n.missing for n in net.nodes.values())


def test_a_missing_id_is_grafted_after_the_timeout_and_its_link_becomes_eager():
    a, b = Broadcast("a"), Broadcast("b")
    for node, peers in ((a, "bc"), (b, "ac")):
        for key in peers:
            node.link_up(key, True)
    assert b.received("a", 1).prune == ["a"]
    a.pruned("b")
    assert a.mode("b") == "lazy" and b.mode("a") == "lazy"
    out = a.spread([("mail", '{"m":1}', 5, None)], now=0.0)
    assert list(out.eager) == ["c"]  # a lazy link gets no item whole
    out = a.tick(IHAVE_DELAY)
    ident = item_id("mail", '{"m":1}')
    assert out.ihave == {"b": [ident]}
    b.announced("a", [ident], now=IHAVE_DELAY)
    assert b.tick(IHAVE_DELAY + GRAFT_AFTER - 0.01).empty()  # not yet: the item may be on its way
    out = b.tick(IHAVE_DELAY + GRAFT_AFTER)
    assert out.graft == {"a": [ident]} and b.mode("a") == "eager"
    assert a.grafted("b", [ident]) == [("mail", '{"m":1}', 5)]
    assert a.mode("b") == "eager"
    assert a.grafted("b", [ident]) == []  # answered once per link
    assert a.grafted("b", ["unknown"]) == []  # only items held are answered


def test_an_id_that_arrives_whole_in_time_is_not_grafted():
    b = Broadcast("b")
    b.link_up("a", True)
    b.link_up("c", True)
    ident = item_id("records", "r")
    b.announced("a", [ident], now=0.0)
    b.see(ident)  # it came whole on another link
    assert b.tick(GRAFT_AFTER + 1).graft == {}


def test_a_duplicate_prunes_its_link_but_never_the_last_eager_one():
    b = Broadcast("b")
    b.link_up("a", True)
    b.link_up("c", True)
    assert b.received("c", 1).prune == ["c"]
    assert b.received("a", 1).prune == []  # the last eager link stays
    assert b.mode("a") == "eager"


def test_a_seed_pruned_of_its_last_eager_link_grafts_the_next_in_its_ring():
    b = Broadcast("b")
    for key in ("a", "c", "d"):
        b.link_up(key, True)
    b.pruned("c")
    b.pruned("d")
    out = b.pruned("a")
    assert list(out.graft) == ["c"] and out.graft["c"] == []  # the next key after "b"
    assert b.mode("c") == "eager"


def test_a_dead_link_is_repaired_by_grafts():
    net = complete(6)
    net.change("k0", "first")
    net.advance(GRAFT_AFTER + 1)
    # k0 is the tree's hub: every other seed has it as its only eager link
    net.cut("k0", "k1")
    net.cut("k0", "k2")
    net.change("k0", "after")
    net.advance(2 * GRAFT_AFTER + 1)
    assert net.everywhere("after")
    net.change("k1", "from k1")
    net.advance(2 * GRAFT_AFTER + 1)
    assert net.everywhere("from k1")


def test_a_line_carries_changes_end_to_end():
    keys = ["a", "b", "c", "d"]
    net = Net(keys, [("a", "b"), ("b", "c"), ("c", "d")])
    for i in range(5):
        net.change("a", f"x{i}")
        net.change("d", f"y{i}")
    assert all(net.everywhere(f"x{i}") and net.everywhere(f"y{i}") for i in range(5))
    assert sum(net.dups.values()) == 0
    assert all(n.mode(k) == "eager" for n in net.nodes.values() for k in n.peers)


def test_a_flooding_peer_gets_everything_whole_and_no_ids_prunes_or_grafts():
    net = complete(5, flood={"k4"})
    for i in range(10):
        net.change(f"k{i % 5}", f"c{i}")
        net.advance(IHAVE_DELAY)
    net.advance(GRAFT_AFTER + 1)
    assert all(net.everywhere(f"c{i}") for i in range(10))
    assert net.ids["k4"] == 0
    assert all(n.mode("k4") == "flood" for k, n in net.nodes.items() if k != "k4")
    # a flooded link is never pruned, so everything reaches it whole
    for node in (n for k, n in net.nodes.items() if k != "k4"):
        assert node.received("k4", 3).prune == []
        assert node.grafted("k4", [item_id("records", "c1")]) == []


def test_presence_goes_whole_to_every_link_and_is_never_announced():
    a = Broadcast("a")
    a.link_up("b", True)
    a.link_up("c", True)
    a.pruned("b")
    out = a.spread([("presence", "{}", 3, None)], now=0.0)
    assert set(out.eager) == {"b", "c"}
    assert a.tick(IHAVE_DELAY).ihave == {}
    assert a.grafted("b", [item_id("presence", "{}")]) == []  # not held for grafts


def test_ids_worked_out_by_the_caller_are_the_ones_seen_announced_and_held():
    """The seed hashes each change once, when it is gossiped: `spread` takes those ids as given."""
    items = [("records", "r1", 1, None), ("presence", "{}", 2, None)]
    plain, given = Broadcast("a"), Broadcast("a")
    for node in (plain, given):
        node.link_up("b", True)
        node.link_up("c", True)
        node.pruned("b")
    idents = [item_id(kind, text) for kind, text, _, _ in items]
    assert given.spread(items, 0.0, idents) == plain.spread(items, 0.0)
    assert given.tick(IHAVE_DELAY) == plain.tick(IHAVE_DELAY)
    assert given.grafted("b", idents[:1]) == plain.grafted("b", idents[:1]) == [items[0][:3]]
    other = Broadcast("a")
    other.link_up("b", True)
    other.spread(items[:1], 0.0, ["given"])
    assert other.has("given") and not other.has(idents[0])


def test_what_is_held_and_waited_for_is_bounded():
    a = Broadcast("a")
    a.link_up("b", True)
    big = "x" * (broadcast.MAX_HELD_BYTES // 4)
    a.spread([("mail", big + str(i), i, None) for i in range(8)], now=0.0)
    assert a.held_bytes <= broadcast.MAX_HELD_BYTES and len(a.held) < 8
    ids = [f"id{i}" for i in range(broadcast.MAX_MISSING + 50)]
    a.announced("b", ids, now=0.0)
    assert len(a.missing) == broadcast.MAX_MISSING
    a.announced("stranger", ["z"], now=0.0)  # not linked: ignored
    assert "z" not in a.missing


def test_a_lazy_link_caps_the_rev_its_gossip_names_below_the_first_change_it_withheld():
    a = Broadcast("a")
    for key in ("b", "c"):
        a.link_up(key, True)
    a.spread([("records", "r1", 10, None)], now=0.0)
    assert a.cap("b") is None  # everything went whole so far
    a.pruned("b")
    a.spread([("records", "r2", 11, None), ("records", "r3", 12, None)], now=0.0)
    a.spread([("records", "from b", 13, "b")], now=0.0)
    assert a.cap("b") == 10  # its sync point may not pass change 11, sent as an id
    assert a.cap("c") is None


def test_an_id_whose_item_is_being_checked_is_not_grafted_yet():
    b = Broadcast("b")
    b.link_up("a", True)
    b.announced("a", ["i1"], now=0.0)
    assert b.tick(GRAFT_AFTER, arriving=lambda ident: ident == "i1").graft == {}
    assert b.tick(GRAFT_AFTER + broadcast.GRAFT_RETRY).graft == {"a": ["i1"]}
