"""The shop's own words, edited from chat: search synonyms and answers to shop questions.

`/synonym 提子 巨峰葡萄` makes a search for 提子 find 巨峰葡萄; `/synonym` lists them and
`/synonym del 提子` forgets one. `/faq add 发票 可以开…` answers any message that
mentions 发票 (before the built-in answers from the shop's rules); `/faq list`,
`/faq del 发票`. Managers only, audited like every command.
"""

from __future__ import annotations

from bot.admin.registry import MANAGERS, REGISTRY, AdminContext, Outcome, UsageError
from bot.chat.replies import Text
from bot.dialogs.common import unit_of_work
from commerce.catalog import lexicon

DELETE_WORDS = ("del", "delete", "remove", "删除", "删")
LIST_WORDS = ("list", "列表")
ADD_WORDS = ("add", "set", "添加", "加")


@REGISTRY.command("synonym", "同义词", roles=MANAGERS, group="catalog")
async def synonym(actx: AdminContext) -> Outcome:
    """/synonym WORD MEANS | /synonym | /synonym del WORD"""
    args = actx.args
    if not args or (len(args) == 1 and args[0].lower() in LIST_WORDS):
        async with unit_of_work(actx.ctx) as session:
            found = await lexicon.list_synonyms(session)
        return Outcome(Text("admin/synonyms", {"items": [{"word": w, "means": m} for w, m in found]}))
    if args[0].lower() in DELETE_WORDS and len(args) == 2:
        async with unit_of_work(actx.ctx) as session:
            before = await lexicon.delete_synonym(session, word=args[1])
        return Outcome(Text("admin/synonym_deleted", {"word": args[1], "found": before is not None}), before, None)
    if len(args) < 2:
        raise UsageError
    word, means = args[0], " ".join(args[1:])
    if not lexicon.fits(word) or not lexicon.fits(means, longest=lexicon.MAX_MEANS):
        raise UsageError
    async with unit_of_work(actx.ctx) as session:
        before, after = await lexicon.set_synonym(session, word=word, means=means)
    return Outcome(Text("admin/synonym_set", {**after, "before": before}), before, after)


@REGISTRY.command("faq", "问答", roles=MANAGERS, group="catalog")
async def faq(actx: AdminContext) -> Outcome:
    """/faq add KEYWORD ANSWER | /faq list | /faq del KEYWORD"""
    action = actx.arg(0).lower()
    if action in LIST_WORDS and len(actx.args) == 1:
        async with unit_of_work(actx.ctx) as session:
            found = await lexicon.list_faqs(session)
        return Outcome(Text("admin/faqs", {"items": [{"keyword": f.keyword, "answer": f.answer} for f in found]}))
    if action in DELETE_WORDS and len(actx.args) == 2:
        async with unit_of_work(actx.ctx) as session:
            before = await lexicon.delete_faq(session, keyword=actx.arg(1))
        return Outcome(Text("admin/faq_deleted", {"keyword": actx.arg(1), "found": before is not None}), before, None)
    if action in ADD_WORDS:
        keyword, answer = actx.arg(1), actx.rest(2)
        if not lexicon.fits(keyword) or len(answer) > lexicon.MAX_ANSWER:
            raise UsageError
        async with unit_of_work(actx.ctx) as session:
            before, after = await lexicon.set_faq(session, keyword=keyword, answer=answer)
        return Outcome(Text("admin/faq_set", {**after, "before": before}), before, after)
    raise UsageError
