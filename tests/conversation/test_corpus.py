"""The conversation corpus (corpus.txt): how customers talk, run against the real app.

Every block of corpus.txt is one customer's conversation, sent as signed WeChat
messages to a demo shop; every scored turn's reply is judged by what a customer would
see (see the head of corpus.txt). The score by category is printed, and each category
must stay at or above its floor in floors.toml: a change that makes the shop understand
less fails CI, and a change that makes it understand more should raise the floor.
"""

from __future__ import annotations

import re
import tomllib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.devtools.simulator import Reply
from tests.bot.conftest import ShopFactory

HERE = Path(__file__).parent
NOT_FOUND = ("没有找到", "nothing found", "no products", "couldn't find", "could not find")
# the shop's error reply (templates/messages/*/error.j2) is never an answer, whatever it contains
ERROR_MARKS = ("系统开小差", "something went wrong")
SEARCH_MARKS = ("相关的商品", "回复数字查看商品详情", "Reply with a number", "products matching")
HUMAN_MARKS = ("人工", "客服", "转接", "工作人员", "human", "person", "staff", "agent")
TURN = re.compile(r"^(?P<say>.+?)\s*=>\s*(?P<kind>shows|chat|says|human|any)\b\s*(?P<args>.*)$")


@dataclass(frozen=True)
class Turn:
    say: str
    kind: str
    args: tuple[str, ...]
    line: int


@dataclass(frozen=True)
class Block:
    category: str
    turns: tuple[Turn, ...]


def load(path: Path = HERE / "corpus.txt") -> list[Block]:
    """The blocks of the corpus; a malformed line is an error, never skipped."""
    blocks: list[Block] = []
    category, turns = "", []  # type: ignore[var-annotated]
    for number, raw in enumerate([*path.read_text(encoding="utf-8").splitlines(), ""], start=1):
        line = raw.strip()
        if line.startswith("# category:"):
            category = line.split(":", 1)[1].strip()
            continue
        if line.startswith("#"):
            continue
        if not line:
            if turns:
                blocks.append(Block(category, tuple(turns)))
                turns = []
            continue
        match = TURN.match(line)
        if match is None or not category:
            raise ValueError(f"corpus.txt:{number}: not 'MESSAGE => EXPECTATION' under a category: {raw!r}")
        args = tuple(a.strip() for a in match["args"].split("|") if a.strip())
        if match["kind"] in ("shows", "says") and not args:
            raise ValueError(f"corpus.txt:{number}: {match['kind']} needs what to look for")
        turns.append(Turn(match["say"], match["kind"], args, number))
    return blocks


def seen(reply: Reply) -> str:
    """Everything the customer sees of a reply."""
    parts = [reply.text] + [f"{a.title}\n{a.description}" for a in reply.articles]
    return "\n".join(parts)


def judged(turn: Turn, reply: Reply) -> bool:
    text = seen(reply)
    lowered = text.lower()
    if any(mark in lowered for mark in ERROR_MARKS):
        return turn.kind == "any"
    not_found = any(mark in lowered for mark in NOT_FOUND)
    if turn.kind == "shows":
        return not not_found and any(name in text for name in turn.args)
    if turn.kind == "says":
        return any(part.lower() in lowered for part in turn.args)
    if turn.kind == "human":
        # WeChat's hand-over reply is MsgType transfer_customer_service
        return reply.kind in ("transfer", "transfer_customer_service") or (
            not not_found and any(m in lowered for m in HUMAN_MARKS)
        )
    if turn.kind == "chat":
        return reply.kind != "none" and not not_found and not any(m.lower() in lowered for m in SEARCH_MARKS)
    return True


def test_the_error_reply_never_passes_as_an_answer() -> None:
    error = Reply(kind="text", text="抱歉，系统开小差了，请稍后再试。您的消息没有丢失，可以重新发送一次。")
    for kind, args in (("chat", ()), ("says", ("消息",)), ("human", ())):
        assert not judged(Turn("谢谢", kind, args, 1), error)
    assert judged(Turn("谢谢", "chat", (), 1), Reply(kind="text", text="不客气！"))


def test_the_corpus_is_well_formed_and_large_enough(tmp_path: Path) -> None:
    blocks = load()
    scored = [t for b in blocks for t in b.turns if t.kind != "any"]
    assert len(scored) >= 400, len(scored)
    floors = tomllib.loads((HERE / "floors.toml").read_text(encoding="utf-8"))
    assert set(floors["category"]) == {b.category for b in blocks}  # every category has a floor
    bad = tmp_path / "corpus.txt"
    bad.write_text("# category: x\n香蕉 => shows 香蕉\n香蕉 -> shows 香蕉\n", encoding="utf-8")
    with pytest.raises(ValueError, match="corpus.txt:3:"):  # refused, never skipped
        load(bad)


async def test_the_shop_understands_the_corpus(make_shop: ShopFactory, sqlite_url: str, capsys) -> None:  # type: ignore[no-untyped-def]
    shop = await make_shop(sqlite_url, scheduler={"enabled": False}, server={"messages_per_minute": 0})
    floors = tomllib.loads((HERE / "floors.toml").read_text(encoding="utf-8"))
    passed: dict[str, int] = defaultdict(int)
    total: dict[str, int] = defaultdict(int)
    misses: list[str] = []
    for number, block in enumerate(load()):
        user = shop.user(f"o_corpus_{number:04d}")
        for turn in block.turns:
            reply = await user.say(turn.say)
            if turn.kind == "any":
                continue
            total[block.category] += 1
            if judged(turn, reply):
                passed[block.category] += 1
            else:
                misses.append(f"  [{block.category}] {turn.say!r} => {turn.kind} {'|'.join(turn.args)}: "
                              f"{seen(reply)[:80]!r}")
    score = {c: passed[c] / total[c] for c in total}
    overall = sum(passed.values()) / sum(total.values())
    with capsys.disabled():
        print("\nconversation corpus: understood by category")
        for category in total:
            print(f"  {category:<22} {passed[category]:>3}/{total[category]:<3} {score[category]:6.1%}"
                  f"  (floor {floors['category'][category]:.0%})")
        print(f"  {'overall':<22} {sum(passed.values()):>3}/{sum(total.values()):<3} {overall:6.1%}"
              f"  (floor {floors['overall']:.0%})")
    below = {c: s for c, s in score.items() if s + 1e-9 < floors["category"][c]}
    assert not below and overall + 1e-9 >= floors["overall"], (
        f"below the floor: {below}, overall {overall:.1%}\nmissed:\n" + "\n".join(misses[:60])
    )
