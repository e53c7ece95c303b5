#!/usr/bin/env python3
"""Builds Tests/CollieMetricsTests/Fixtures/: inputs and the values sacrebleu 2.6.0, rouge-score 0.1.2
(with NLTK's Porter stemmer) and scikit-learn compute for them, for Tests/CollieMetricsTests.

Run by hand (never by CI) from the repository root:

    pip install sacrebleu==2.6.0 rouge-score==0.1.2 nltk scikit-learn
    python3 scripts/make_metrics_fixtures.py

It writes
    reference_cases.json  the inputs of sacrebleu's own tests (test/test_bleu.py, test/test_sentence_bleu.py) and
                          rouge-score's (rouge_scorer_test.py, tokenize_test.py), from their source distributions
                          (`pip download --no-deps --no-binary :all: sacrebleu==2.6.0 rouge-score==0.1.2`), with
                          the values the installed libraries give for them
    corpus.json           a multilingual corpus of hypothesis/reference pairs (English and Romanian from the
                          bundled XSum/WMT samples, Alpaca outputs, Chinese Alpaca outputs, and hand-written lines
                          in other scripts), hypotheses made from references by seeded perturbations
    bleu.json             per tokenizer: tokenized hypotheses (a sample), corpus BLEU under many settings,
                          sentence BLEU of every pair
    rouge.json            per pair: ROUGE-1/2/L/Lsum P/R/F with and without stemming; Porter stems of every word
    lowercase.json        Python's str.lower() of every code point it changes, and final-sigma strings
    classification.json   random label sets and scikit-learn's precision/recall/F1 (per class, micro, macro)
                          and accuracy

Only inputs are taken from the libraries' test files; every expected value is computed here by the libraries.
"""

import json
import os
import random
import re

import numpy as np
import sacrebleu
from nltk.stem import porter
from rouge_score import rouge_scorer
from sacrebleu.metrics import BLEU
from sklearn.metrics import accuracy_score, precision_recall_fscore_support

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "Tests", "CollieMetricsTests", "Fixtures")
DATA = os.path.join(ROOT, "data")
CHINESE = os.environ.get("ALPACA_ZH", "/work/shared/data/sft/alpaca_zh_demo.json")
TOKENIZERS = ["13a", "none", "intl", "zh", "char"]
ROUGE_TYPES = ["rouge1", "rouge2", "rougeL", "rougeLsum"]


def concatenated_json(path):
    """The bundled XSum/WMT samples are JSON objects one after another (not an array, not one per line)."""
    text, decoder, objects, index = open(path, encoding="utf-8").read(), json.JSONDecoder(), [], 0
    while True:
        while index < len(text) and text[index].isspace():
            index += 1
        if index >= len(text):
            return objects
        value, index = decoder.raw_decode(text, index)
        objects.append(value)


# Lines in other scripts and with the characters the tokenizers treat specially (written for this fixture).
HANDWRITTEN = [
    "Der schnelle braune Fuchs springt über den faulen Hund, oder nicht?",
    "Größere Straßen führen zu „mehr Verkehr“ – sagt die Studie (2019).",
    "Le prix est de 1.250,50 € — soit 10% de plus qu'en 2020 !",
    "L'été dernier, j'ai lu « Les Misérables » en trois semaines.",
    "ΟΔΟΣ ΠΡΟΣ ΤΗΝ ΑΘΗΝΑ ΚΑΙ ΤΟΝ ΟΔΥΣΣΕΑ.",
    "Москва — столица России; население: 12,6 млн человек.",
    "Это был «лучший» день в моей жизни, сказал он.",
    "東京は日本の首都です。人口は約1400万人です。",
    "서울은 대한민국의 수도이며, 인구는 약 천만 명입니다.",
    "القاهرة هي عاصمة مصر، وعدد سكانها كبير جدا.",
    "हिन्दी भारत की एक प्रमुख भाषा है, जिसे करोड़ों लोग बोलते हैं।",
    "The price rose from $1,000.50 to $2,500 (a 150% increase) in 3-4 weeks.",
    "She said: \"It's e-mail, not E-Mail!\" & left at 10:30 p.m.",
    "Use &quot;quotes&quot; &amp; ampersands &lt;carefully&gt; here.",
    "Numbers like 3.14, 2,718 and -42 should stay whole; 1990-2000 splits.",
    "A line with <skipped> words and a hyphen-\nated break.",
    "Tabs\tand  double  spaces   and trailing spaces   ",
    "Emoji 😀 and symbols ©®™ and math ∑ ≤ ≥ ± × ÷ appear here.",
    "Curly ‘single’ and “double” quotes… and an ellipsis.",
    "İstanbul'da KARŞIYAKA ve İZMİR arasında ılık bir rüzgâr esti.",
    "Crème brûlée, naïve café, façade and résumé are borrowed words.",
    "Kelvin sign K and Angstrom sign Å and ligature ﬁ in text.",
    "中文句子，包括全角标点：“你好”！还有English混合。",
    "数字１２３和ＡＢＣ是全角字符；半角是123和ABC。",
    "URL http://example.com/path?x=1&y=2 and user@example.org.",
    "C++ and C# are languages; so are F* and Objective-C.",
    "Dr. Smith arrived at 5 p.m., i.e. after the U.S. meeting.",
    "What?! No way... Really?!",
    "Vietnamese: Tiếng Việt có dấu như ả, ẫ, ự và đ.",
    "Thai: ภาษาไทยไม่มีการเว้นวรรคระหว่างคำ",
]


def references():
    """(language, text) reference lines, in a fixed order."""
    lines = []
    for record in concatenated_json(os.path.join(DATA, "eval", "xsum", "sample.json")):
        lines.append(("en", record["summary"]))
        sentences = [s for s in record["document"].split("\n") if s.strip()]
        lines += [("en", s) for s in sentences[:10]]
        lines.append(("en", "\n".join(sentences[:3])))  # multi-sentence lines for ROUGE-Lsum
    for name in ["wmt16_en_ro/sample.json", "wmt_en_ro/train.json", "wmt_en_ro/val.json", "wmt_en_ro/test.json"]:
        for record in concatenated_json(os.path.join(DATA, "eval", name)):
            lines.append(("en", " ".join(record["translation"]["en"].split()[:60])))
            lines.append(("ro", " ".join(record["translation"]["ro"].split()[:60])))
    alpaca = json.load(open(os.path.join(DATA, "alpaca_en_demo.json"), encoding="utf-8"))
    for record in alpaca[:150]:
        parts = [p for p in record["output"].split("\n") if p.strip()][:3]
        lines.append(("en", "\n".join(parts)))
    chinese = json.load(open(CHINESE, encoding="utf-8"))
    for record in chinese[:150]:
        lines.append(("zh", record["output"][:160]))
    lines += [("mixed", text) for text in HANDWRITTEN]
    return lines


def perturbed(text, language, rng, vocabulary):
    """A hypothesis made from `text` by 1-3 seeded edits (word edits; character edits for Chinese)."""
    if language == "zh":
        chars = list(text)
        for _ in range(rng.randint(1, 3)):
            if len(chars) < 2:
                break
            op, i = rng.randrange(4), rng.randrange(len(chars) - 1)
            if op == 0:
                del chars[i]
            elif op == 1:
                chars[i], chars[i + 1] = chars[i + 1], chars[i]
            elif op == 2:
                chars.insert(i, rng.choice("的了是在和有我，。"))
            else:
                chars = chars[: max(1, int(len(chars) * 0.7))]
        return "".join(chars)
    words = text.split(" ")
    for _ in range(rng.randint(1, 3)):
        if not words:
            break
        op, i = rng.randrange(9), rng.randrange(len(words))
        if op == 0 and len(words) > 1:
            del words[i]
        elif op == 1 and i + 1 < len(words):
            words[i], words[i + 1] = words[i + 1], words[i]
        elif op == 2:
            words.insert(i, words[i])
        elif op == 3:
            words[i] = rng.choice(vocabulary)
        elif op == 4:
            words = [w.lower() for w in words]
        elif op == 5:
            words = words[: max(1, int(len(words) * 0.6))]
        elif op == 6:
            words[i] = re.sub(r"[^\w\s]", "", words[i])
        elif op == 7:
            words[i] = words[i] + rng.choice([",", ".", "!", " .", "'s", "-"])
        else:
            words[i] = re.sub(r"\d", lambda m: str((int(m.group()) + 1) % 10), words[i]).upper()
    return " ".join(words)


def corpus():
    rng = random.Random(20240607)
    lines = references()
    vocabulary = sorted({w for _, t in lines for w in t.split() if w.isalpha()})
    pairs = []
    for index, (language, reference) in enumerate(lines):
        roll = rng.random()
        if roll < 0.04:
            hypothesis = reference
        elif roll < 0.06:
            hypothesis = ""
        elif roll < 0.09:
            hypothesis = lines[(index * 7 + 3) % len(lines)][1]
        else:
            hypothesis = perturbed(reference, language, rng, vocabulary)
        refs = [reference]
        if rng.random() < 0.4:
            refs.append(perturbed(reference, language, rng, vocabulary))
            if rng.random() < 0.25:
                refs.append(perturbed(reference, language, rng, vocabulary))
        pairs.append({"language": language, "hypothesis": hypothesis, "references": refs})
    return pairs


def streams(pairs):
    """sacrebleu's reference layout: one stream per reference slot, None where a segment has fewer."""
    width = max(len(p["references"]) for p in pairs)
    return [[p["references"][k] if k < len(p["references"]) else None for p in pairs] for k in range(width)]


def bleu_score(score):
    return {"score": score.score, "precisions": score.precisions, "bp": score.bp, "sys_len": score.sys_len,
            "ref_len": score.ref_len, "counts": score.counts, "totals": score.totals}


BLEU_SETTINGS = (
    [{"tokenize": t} for t in TOKENIZERS]
    + [{"tokenize": t, "lowercase": True} for t in ["13a", "intl", "char"]]
    + [{"smooth_method": "none"}, {"smooth_method": "floor"}, {"smooth_method": "floor", "smooth_value": 0.5},
       {"smooth_method": "add-k"}, {"smooth_method": "add-k", "smooth_value": 2}]
    + [{"max_ngram_order": n} for n in [1, 2, 3, 6]]
    + [{"effective_order": True}, {"tokenize": "zh", "max_ngram_order": 2}]
)
SENTENCE_SETTINGS = (
    [{"tokenize": t} for t in TOKENIZERS]
    + [{"smooth_method": "none"}, {"smooth_method": "floor"}, {"smooth_method": "add-k"},
       {"smooth_method": "add-k", "smooth_value": 2}, {"lowercase": True, "tokenize": "intl"}]
)


def bleu_fixture(pairs):
    hypotheses = [p["hypothesis"] for p in pairs]
    refs = streams(pairs)
    # Tokenized hypotheses of a quarter of the pairs and of every hand-written line (the rest is covered by the
    # scores), to keep the file small.
    sampled = [i for i, p in enumerate(pairs) if i % 4 == 0 or p["language"] == "mixed"]
    tokenized = {"indices": sampled}
    for name in TOKENIZERS:
        tokenizer = BLEU(tokenize=name).tokenizer
        tokenized[name] = [tokenizer(hypotheses[i].rstrip()) for i in sampled]
    corpus_scores = [{"settings": s, **bleu_score(BLEU(**s).corpus_score(hypotheses, refs))} for s in BLEU_SETTINGS]
    sentence_scores = []
    for s in SENTENCE_SETTINGS:
        metric = BLEU(effective_order=True, **s)
        sentence_scores.append({"settings": s, "scores": [metric.sentence_score(p["hypothesis"], p["references"]).score
                                                          for p in pairs]})
    return {"tokenized": tokenized, "corpus": corpus_scores, "sentence": sentence_scores}


def rouge_fixture(pairs):
    result = {"pairs": {}}
    for stemming in [False, True]:
        scorer = rouge_scorer.RougeScorer(ROUGE_TYPES, use_stemmer=stemming)
        rows = []
        for p in pairs:
            scores = scorer.score(p["references"][0], p["hypothesis"])
            rows.append({t: [scores[t].precision, scores[t].recall, scores[t].fmeasure] for t in ROUGE_TYPES})
        result["pairs"]["stemmed" if stemming else "plain"] = rows
        multi = [scorer.score_multi(p["references"], p["hypothesis"]) for p in pairs]
        result["multi_" + ("stemmed" if stemming else "plain")] = [
            {t: [m[t].precision, m[t].recall, m[t].fmeasure] for t in ROUGE_TYPES} for m in multi]
    stemmer = porter.PorterStemmer()
    words = set()
    for p in pairs:
        for text in [p["hypothesis"]] + p["references"]:
            words.update(w for w in re.split(r"[^a-z0-9]+", text.lower()) if len(w) > 3)
    words.update(CLASSIC_WORDS)
    result["stems"] = {w: stemmer.stem(w) for w in sorted(words)}
    return result


# Words that exercise each step of the Porter algorithm and NLTK's extensions.
CLASSIC_WORDS = """caresses ponies ties caress cats feed agreed plastered bled motoring sing conflated troubled sized
hopping tanned falling hissing fizzed failing filing happy sky relational conditional rational valenci hesitanci
digitizer conformabli radicalli differentli vileli analogousli vietnamization predication operator feudalism
decisiveness hopefulness callousness formaliti sensitiviti sensibiliti triplicate formative formalize electriciti
electrical hopeful goodness revival allowance inference airliner gyroscopic adjustable defensible irritant
replacement adjustment dependent adoption homologou communism activate angulariti homologous effective bowdlerize
probate rate cease controll roll dying lying tying news innings outings cannings howe proceed exceed succeed
generously fully logically analogies skies flies cried spied died generalization generalizations oscillators
syllogism archaeology""".split()


CLASSIFICATION_CASES = [(seed, n, k, kind) for seed, (n, k, kind) in enumerate(
    [(1, 2, "int"), (5, 2, "int"), (20, 3, "int"), (50, 4, "str"), (100, 5, "int"), (200, 7, "str"), (37, 3, "str"),
     (64, 10, "int"), (3, 6, "int"), (150, 2, "str"), (80, 4, "int"), (500, 8, "int")])]


def classification_fixture():
    cases = []
    for seed, n, k, kind in CLASSIFICATION_CASES:
        rng = np.random.default_rng(seed)
        true = rng.integers(0, k, n)
        # Predictions right about 60% of the time, sometimes a label that never occurs in the truth.
        predicted = np.where(rng.random(n) < 0.6, true, rng.integers(0, k + 1, n))
        if kind == "str":
            names = ["label_" + chr(ord("a") + i) for i in range(k + 1)]
            true, predicted = [names[i] for i in true], [names[i] for i in predicted]
        else:
            true, predicted = [int(i) for i in true], [int(i) for i in predicted]
        entry = {"references": true, "predictions": predicted, "accuracy": accuracy_score(true, predicted)}
        for average in ["micro", "macro"]:
            p, r, f, _ = precision_recall_fscore_support(true, predicted, average=average, zero_division=0)
            entry[average] = [p, r, f]
        p, r, f, s = precision_recall_fscore_support(true, predicted, average=None, zero_division=0)
        labels = sorted(set(true) | set(predicted))
        entry["per_label"] = [{"label": l, "precision": float(a), "recall": float(b), "f1": float(c), "support": int(d)}
                              for l, a, b, c, d in zip(labels, p, r, f, s)]
        cases.append(entry)
    return cases


# Inputs of the reference libraries' own tests (sacrebleu test/test_bleu.py, test/test_sentence_bleu.py;
# rouge-score rouge_scorer_test.py, tokenize_test.py). Only the inputs; expected values come from the libraries.
SACREBLEU_REFS = [["The dog bit the man.", "It was not unexpected.", "The man bit him first."],
                  ["The dog had bit the man.", "No one was surprised.", "The man had bitten the dog."]]
SACREBLEU_HYPS = ["The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."]
SENTENCE_REF, SENTENCE_SYS = "producţia de zahăr brut se exprimă în zahăr alb;", \
    "Producția de zahăr primă va fi exprimată în ceea ce privește zahărul alb;"


def reference_cases():
    corpus_cases = []
    for hyps, refs, kwargs in [
            (["this is a test", "another test"], [["ref1", "ref2"]], {}),
            (["this is a test"], [["this is a test"]], {}), (["this is a fest"], [["this is a test"]], {}),
            (SACREBLEU_HYPS, SACREBLEU_REFS, {}), (["", "", ""], SACREBLEU_REFS, {}),
            (SACREBLEU_HYPS, SACREBLEU_REFS, {"tokenize": "none"}), (SACREBLEU_HYPS, SACREBLEU_REFS, {"tokenize": "13a"}),
            (SACREBLEU_HYPS, SACREBLEU_REFS, {"tokenize": "intl"}),
            (SACREBLEU_HYPS, SACREBLEU_REFS, {"smooth_method": "none"}),
            (["am I am a character sequence"], [["I am a symbol string sequence a a"]], {})] + [
            (SACREBLEU_HYPS, SACREBLEU_REFS, {"max_ngram_order": n}) for n in range(1, 7)] + [
            (["test"], [["a test"]], {"effective_order": True}), (["a test"], [["a test"]], {"effective_order": True}),
            (["a little test"], [["a test"]], {"effective_order": True})]:
        score = BLEU(**kwargs).corpus_score(hyps, refs)
        corpus_cases.append({"hypotheses": hyps, "reference_streams": refs, "settings": kwargs, **bleu_score(score)})
    sentence_cases = []
    for method, value, lowercase, tok in [
            ("exp", None, False, "13a"), ("none", None, False, "13a"), ("floor", None, False, "13a"),
            ("floor", 0.1, False, "13a"), ("floor", 0.5, False, "13a"), ("add-k", None, False, "13a"),
            ("add-k", 1, False, "13a"), ("add-k", 2, False, "13a"), ("exp", None, False, "none"),
            ("exp", None, False, "intl"), ("exp", None, False, "char"), ("exp", None, True, "char")]:
        for hyp, ref in [(SENTENCE_SYS, SENTENCE_REF), ("this is a cat", "okay thanks")]:
            score = sacrebleu.sentence_bleu(hyp, [ref], smooth_method=method, smooth_value=value, lowercase=lowercase,
                                            tokenize=tok)
            sentence_cases.append({"hypothesis": hyp, "reference": ref, "settings": {
                "smooth_method": method, "smooth_value": value, "lowercase": lowercase, "tokenize": tok},
                "score": score.score})
    statistics = [{"hypothesis": h, "references": r, "sys_len": s[0], "ref_len": s[1], "correct": s[2:6],
                   "total": s[6:10]} for h, r, s in [
        (h, r, BLEU()._extract_corpus_statistics([h], [[x] for x in r])[0])
        for h, r in [("am I am a character sequence", ["I am a symbol string sequence a a"])]]]
    rouge_cases = []
    for types, stem, target, prediction in [
            (["rouge1"], False, "testing one two", "testing"), (["rouge2"], False, "testing one two", "testing one"),
            (["rougeL"], False, "testing one two", "testing one"), (["rougeL"], False, "testing one two", "testing two"),
            (["rouge1", "rougeL"], False, "testing one two", "testing one"),
            (ROUGE_TYPES, False, "testing one two", ""),
            (["rougeLsum"], True, "First sentence.\nSecond Sentence.", "Second sentence.\nFirst Sentence."),
            (["rougeLsum"], True, "First sentence. Second Sentence.", "Second sentence. First Sentence."),
            (["rougeLsum"], False, "w1 w2 w3 w4 w5", "w1 w2 w6 w7 w8\nw1 w3 w8 w9 w5"),
            (["rougeLsum"], False, "w1 w2 w3 w4 w5", ""), (["rougeLsum"], False, "", "w1"),
            (["rougeLsum"], False, "w1 w2 w3 w4 w5", "/")]:
        scores = rouge_scorer.RougeScorer(types, use_stemmer=stem).score(target, prediction)
        rouge_cases.append({"types": types, "stemming": stem, "target": target, "prediction": prediction,
                            "scores": {t: [scores[t].precision, scores[t].recall, scores[t].fmeasure] for t in types}})
    multi = []
    for types, targets, prediction in [(["rouge1"], ["testing one two"], "testing"),
                                       (["rouge1", "rouge2", "rougeL"], ["first text", "first something"], "text first")]:
        scores = rouge_scorer.RougeScorer(types).score_multi(targets, prediction)
        multi.append({"types": types, "targets": targets, "prediction": prediction,
                      "scores": {t: [scores[t].precision, scores[t].recall, scores[t].fmeasure] for t in types}})
    from rouge_score import tokenize
    tokenize_cases = [{"text": t, "tokens": tokenize.tokenize(t, None)} for t in ["one Two three", "one\n Two \nthree"]]
    return {"bleu_corpus": corpus_cases, "bleu_sentence": sentence_cases, "bleu_statistics": statistics,
            "rouge": rouge_cases, "rouge_multi": multi, "rouge_tokenize": tokenize_cases}


def lowercase_fixture():
    """Python's str.lower() for every code point it changes (sacrebleu's --lowercase and rouge-score's tokenizer
    lowercase with it), and a few strings for the final-sigma rule."""
    import sys
    import unicodedata
    changed = [[c, chr(c).lower()] for c in range(sys.maxunicode + 1)
               if 0xD800 > c or c > 0xDFFF if chr(c).lower() != chr(c)]
    strings = ["ΟΔΟΣ ΠΡΟΣ", "Σ", "ΑΣ.", "ΑΣΑ", "A\u0301Σ", "ΑΣ\u0301", "İSTANBUL", "ΣΑ"]
    return {"unicode_version": unicodedata.unidata_version, "changed": changed,
            "strings": [[t, t.lower()] for t in strings]}


def dump(name, value):
    with open(os.path.join(OUT, name), "w", encoding="utf-8") as f:
        json.dump(value, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")


def main():
    os.makedirs(OUT, exist_ok=True)
    pairs = corpus()
    assert len(pairs) >= 500, len(pairs)
    dump("corpus.json", pairs)
    dump("bleu.json", bleu_fixture(pairs))
    dump("rouge.json", rouge_fixture(pairs))
    dump("classification.json", classification_fixture())
    dump("reference_cases.json", reference_cases())
    dump("lowercase.json", lowercase_fixture())
    languages = {}
    for p in pairs:
        languages[p["language"]] = languages.get(p["language"], 0) + 1
    print(f"{len(pairs)} pairs {languages}; fixtures in {OUT}")


if __name__ == "__main__":
    main()
