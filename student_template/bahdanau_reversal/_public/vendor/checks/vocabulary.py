"""The `vocabulary` check: a fresh Vocabulary holds the four specials, add_sentence numbers new
words 4, 5, ... in order of first appearance, sentence_to_indices maps unknown words to <UNK>
and appends <EOS> only when asked, and indices_to_sentence gives the words back without the
specials; word2idx, idx2word and word_count are read back and must agree.
"""

from __future__ import annotations

from autograder.sandbox.wire import describe
from autograder.toolkit.check import Check, Verdict
from autograder.toolkit.verdict import Mismatch, value_of

from .common import EOS, PAD, SOS, SPECIALS, UNK, id_list

# ---- the vocabulary ----------------------------------------------------------------------

FIRST, SECOND = ["the", "cat", "sat"], ["the", "dog", "sat", "down"]
UNKNOWN_SENTENCE = ["the", "dog", "barked"]
DECODE_IDS = [SOS, 4, 5, 6, EOS, PAD, PAD]


class VocabularyCheck(Check):
    """A fresh Vocabulary holds the four specials; add_sentence numbers new words 4, 5, ... in
    order of first appearance; sentence_to_indices maps unknown words to <UNK> and appends
    <EOS> only with add_eos=True; indices_to_sentence gives the words back without specials."""

    name = "vocabulary"
    needs_reference = False

    @staticmethod
    def probe(student, inputs, device):
        def snapshot(vocab):
            word2idx = getattr(vocab, "word2idx", None)
            count = getattr(vocab, "word_count", None)
            state = {"word2idx": [[str(word), index if isinstance(index, int) else describe(index)]
                                  for word, index in word2idx.items()] if isinstance(word2idx, dict) else
                     describe(word2idx), "word_count": count if isinstance(count, int) else describe(count)}
            idx2word = getattr(vocab, "idx2word", None)
            size = count if isinstance(count, int) else len(word2idx) if isinstance(word2idx, dict) else 0
            looked_up = student.call(lambda: [idx2word[index] for index in range(size)])
            state["idx2word"] = ({"ok": True, "value": [str(word) for word in looked_up["value"]]}
                                 if looked_up["ok"] else looked_up)
            return state

        def run():
            vocab = student.Vocabulary()
            fresh = snapshot(vocab)
            vocab.add_sentence(list(FIRST))
            vocab.add_sentence(list(SECOND))
            added = snapshot(vocab)
            return {"fresh": fresh, "added": added,
                    "plain": id_list(vocab.sentence_to_indices(list(UNKNOWN_SENTENCE))),
                    "eos": id_list(vocab.sentence_to_indices(list(UNKNOWN_SENTENCE), add_eos=True)),
                    "words": vocab.indices_to_sentence(list(DECODE_IDS))}
        return student.call(run)

    def verdict(self, ctx, inputs, got, expected):
        value = value_of(got, "Vocabulary()")
        self.require_state(value["fresh"], SPECIALS, "a fresh Vocabulary()")
        wanted = dict(SPECIALS)
        for word in FIRST + SECOND:
            wanted.setdefault(word, len(wanted))
        self.require_state(value["added"], wanted, f"after add_sentence({FIRST}) and add_sentence({SECOND})")
        for key, add_eos in (("plain", False), ("eos", True)):
            call = f"sentence_to_indices({UNKNOWN_SENTENCE}{', add_eos=True' if add_eos else ''})"
            right = [wanted.get(word, UNK) for word in UNKNOWN_SENTENCE] + ([EOS] if add_eos else [])
            if value[key] != right:
                hint = (" (<EOS> = 2 goes at the end only when add_eos=True)" if isinstance(value[key], list)
                        and value[key][:3] == right[:3] else " (a word not in the vocabulary becomes <UNK> = 3)")
                raise Mismatch(f"{call} after those sentences should give the ids of the words{hint}",
                               expected=str(right), got=str(value[key]) if isinstance(value[key], list)
                               else describe(value[key]))
        call = f"indices_to_sentence({DECODE_IDS})"
        inverse = {index: word for word, index in wanted.items()}
        right = [inverse[index] for index in DECODE_IDS if index > UNK]
        if value["words"] != right:
            hint = ("it should return a list of words, not one string" if isinstance(value["words"], str) else
                    "<PAD>, <SOS>, <EOS> and <UNK> are dropped")
            raise Mismatch(f"{call} should give the words back: {hint}", expected=repr(right),
                           got=repr(value["words"]) if isinstance(value["words"], (list, str)) else describe(value["words"]))
        return Verdict.ok(f"<PAD>=0 <SOS>=1 <EOS>=2 <UNK>=3; new words numbered 4.. in order of first appearance "
                          f"(word_count {len(wanted)}); unknown words -> <UNK>; add_eos appends <EOS>; "
                          "indices_to_sentence drops the specials")

    @staticmethod
    def require_state(state: dict, wanted: dict[str, int], when: str) -> None:
        if not isinstance(state["word2idx"], list):
            raise Mismatch(f"{when}: word2idx should be a dict from word to id", expected="a dict",
                           got=state["word2idx"])
        word2idx = dict(state["word2idx"])
        if word2idx != wanted:
            wrong = next((word for word in wanted if word2idx.get(word) != wanted[word]), None)
            extra = sorted(set(word2idx) - set(wanted))
            detail = (f"word2idx[{wrong!r}] = {word2idx.get(wrong, 'missing')}" if wrong is not None
                      else f"extra entries {extra[:5]}")
            raise Mismatch(f"{when}: word2idx should map <PAD>, <SOS>, <EOS>, <UNK> to 0, 1, 2, 3 and each new word "
                           f"to the next id, in order of first appearance; {detail}", expected=str(wanted)[:300],
                           got=str(word2idx)[:300])
        if state["word_count"] != len(wanted):
            raise Mismatch(f"{when}: word_count should be the size of the vocabulary", expected=str(len(wanted)),
                           got=str(state["word_count"]))
        words = value_of(state["idx2word"], f"{when}: idx2word[i] for i in range(word_count)")
        inverse = [word for word, _ in sorted(wanted.items(), key=lambda pair: pair[1])]
        if words != inverse:
            at = next(i for i, (a, b) in enumerate(zip(words, inverse, strict=False)) if a != b) \
                if len(words) == len(inverse) else min(len(words), len(inverse))
            raise Mismatch(f"{when}: idx2word should be the inverse of word2idx (idx2word[word2idx[w]] == w)",
                           expected=f"idx2word[{at}] = {inverse[at]!r}" if at < len(inverse) else str(inverse),
                           got=f"idx2word[{at}] = {words[at]!r}" if at < len(words) else str(words))
