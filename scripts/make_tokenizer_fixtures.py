#!/usr/bin/env python3
"""Makes Collie's tokenizer fixtures: the bundled tokenizers, the parity corpus and the reference ids.

Run by hand (CI needs neither Python nor network):

    pip install tokenizers sentencepiece
    python3 scripts/make_tokenizer_fixtures.py [--shared /work/shared/data]

It writes
  tokenizers/<name>/...                                    the tokenizers (tokenizer.json minified, same content)
  Tests/CollieTokenizersTests/Fixtures/corpus.jsonl       {"text": ...} per line, deterministic (seed 0)
  Tests/CollieTokenizersTests/Fixtures/expected/<name>.jsonl
      one line per corpus line: {"ids": [...]} from the format's reference library, plus "decoded" when the
      reference decode differs from the text; the first SPECIAL_LINES lines also carry "special_ids" (encoded
      with special tokens) and "decoded_skip" (those decoded with skip_special_tokens=True)
  Tests/CollieTokenizersTests/Fixtures/variants.json      variants of bundled tokenizers (see VARIANTS)
  Tests/CollieTokenizersTests/Fixtures/vectors/...         swift-transformers' vectors for the tokenizers we have

References: `tokenizers` (Tokenizer.from_file) for tokenizer.json, `sentencepiece` for .model files.
"""
import argparse
import json
import random
import shutil
from pathlib import Path

import sentencepiece as spm
import tokenizers
from sentencepiece import sentencepiece_model_pb2

ROOT = Path(__file__).resolve().parent.parent
TOKENIZERS = ROOT / "tokenizers"
FIXTURES = ROOT / "Tests" / "CollieTokenizersTests" / "Fixtures"
SPECIAL_LINES = 150

JSON_TOKENIZERS = ["gpt2", "llama2", "llama2-hubstyle", "llama3", "qwen2"]
SPM_TOKENIZERS = {"llama2-spm": "tokenizer.model", "chinese-sp": "chinese_sp.model",
                  "spm-bpe-user": "tokenizer.model", "spm-unigram-user": "tokenizer.model"}
# SentencePiece models trained here (on tinyshakespeare) to cover what the real ones lack: user-defined and
# control symbols, no dummy prefix, kept whitespace runs, whitespace as suffix.
TRAINED_SPM = {
    "spm-bpe-user": dict(model_type="bpe", byte_fallback=True, normalization_rule_name="identity",
                         add_dummy_prefix=False, remove_extra_whitespaces=False),
    "spm-unigram-user": dict(model_type="unigram", byte_fallback=False, treat_whitespace_as_suffix=True),
}
VECTOR_FILES = ["gpt2_encoded_tokens.json", "llama_encoded.json", "llama_3.2_encoded.json",
                "whisper_tiny_en_encoded.json", "tokenizer_tests.json", "LICENSE.swift-transformers"]
# Variants of bundled tokenizers, made at test time by replacing top-level members of the base tokenizer.json
# (written to Fixtures/variants.json for the Swift tests):
# - gpt2-regex: a split pattern no hand-written matcher knows (the general regex engine);
# - gpt2-added: a Lowercase normalizer and added tokens with lstrip, rstrip, single_word and normalized;
# - llama2-first: Metaspace's `first` prepend scheme, splitting;
# - unigram-*: the other normalizers, pre-tokenizers and split behaviors in front of a Unigram model.
VARIANTS = {
    "gpt2-regex": {"base": "gpt2", "replace": {"pre_tokenizer": {
        "type": "Sequence",
        "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": r"(?i:'s|'t|'re)|\p{N}{1,2}| ?\p{L}+|[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"},
             "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
        ],
    }}},
    "gpt2-added": {"base": "gpt2", "replace": {
        "normalizer": {"type": "Lowercase"},
        "added_tokens": [
            {"id": 50256, "content": "<|endoftext|>", "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": False, "special": True},
            {"id": 50257, "content": "<mask>", "single_word": False, "lstrip": True, "rstrip": False,
             "normalized": False, "special": True},
            {"id": 50258, "content": "[x]", "single_word": False, "lstrip": False, "rstrip": True,
             "normalized": False, "special": False},
            {"id": 50259, "content": "word", "single_word": True, "lstrip": False, "rstrip": False,
             "normalized": True, "special": False},
            {"id": 50260, "content": "Straße", "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": True, "special": False},
            {"id": 50261, "content": "<both>", "single_word": False, "lstrip": True, "rstrip": True,
             "normalized": False, "special": True},
        ],
    }},
    "llama2-first": {"base": "llama2", "replace": {
        "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": True},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": True},
            {"type": "ByteFallback"}, {"type": "Fuse"}]},
    }},
    "unigram-punctuation": {"base": "chinese-sp-unigram", "replace": {
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "NFD"}, {"type": "StripAccents"}, {"type": "NFC"},
            {"type": "Replace", "pattern": {"Regex": "\\s+"}, "content": " "},
            {"type": "Strip", "strip_left": True, "strip_right": True}, {"type": "Prepend", "prepend": "\u2581"}]},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"String": " "}, "behavior": "MergedWithNext", "invert": False},
            {"type": "Digits", "individual_digits": True},
            {"type": "Punctuation", "behavior": "MergedWithPrevious"}]},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"Regex": "\u2581+"}, "content": " "},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
    }},
    "unigram-whitespace": {"base": "chinese-sp-unigram", "replace": {
        "normalizer": {"type": "Sequence", "normalizers": [{"type": "NFKD"}, {"type": "Lowercase"}]},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "WhitespaceSplit"}, {"type": "Digits", "individual_digits": False},
            {"type": "Split", "pattern": {"Regex": "[aeiou]+"}, "behavior": "Contiguous", "invert": True}]},
        "decoder": {"type": "Fuse"},
    }},
    "unigram-words": {"base": "chinese-sp-unigram", "replace": {
        "normalizer": {"type": "NFKC"},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Whitespace"},
            {"type": "Split", "pattern": {"String": "e"}, "behavior": "Removed", "invert": False},
            {"type": "Split", "pattern": {"Regex": "\\d"}, "behavior": "MergedWithNext", "invert": False},
            {"type": "BertPreTokenizer"}]},
        "decoder": None,
    }},
}


def minified(path):
    return json.dumps(json.load(open(path, encoding="utf-8")), ensure_ascii=False, separators=(",", ":"))


def copy_tokenizers(shared):
    source = shared / "tokenizers"
    for name in JSON_TOKENIZERS:
        target = TOKENIZERS / name
        target.mkdir(parents=True, exist_ok=True)
        (target / "tokenizer.json").write_text(minified(source / name / "tokenizer.json"), encoding="utf-8")
        shutil.copy(source / name / "tokenizer_config.json", target / "tokenizer_config.json")
    for name, file in SPM_TOKENIZERS.items():
        (TOKENIZERS / name).mkdir(parents=True, exist_ok=True)
        if name in TRAINED_SPM:
            spm.SentencePieceTrainer.train(
                input=str(ROOT / "data" / "tinyshakespeare.txt"), model_prefix=str(TOKENIZERS / name / "tokenizer"),
                vocab_size=1000, user_defined_symbols=["<sep>", "foo", "\u2581bar"], control_symbols=["<cls>"],
                num_threads=1, character_coverage=1.0, input_sentence_size=0, shuffle_input_sentence=False,
                minloglevel=2, **TRAINED_SPM[name])
            (TOKENIZERS / name / "tokenizer.vocab").unlink()
        else:
            shutil.copy(source / name / file, TOKENIZERS / name / file)
    make_unigram_json(TOKENIZERS / "chinese-sp" / "chinese_sp.model", TOKENIZERS / "chinese-sp-unigram")
    vectors = FIXTURES / "vectors"
    vectors.mkdir(parents=True, exist_ok=True)
    for file in VECTOR_FILES:
        shutil.copy(source / "vectors" / file, vectors / file)


def make_unigram_json(model_path, folder):
    """A tokenizer.json Unigram model from chinese_sp.model's pieces: NFKC, Metaspace, <s> template."""
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(model_path.read_bytes())
    vocab = [(p.piece, p.score) for p in proto.pieces]
    tok = tokenizers.Tokenizer(tokenizers.models.Unigram(vocab, unk_id=0, byte_fallback=False))
    tok.normalizer = tokenizers.normalizers.NFKC()
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=True)
    tok.decoder = tokenizers.decoders.Metaspace(replacement="▁", prepend_scheme="first", split=True)
    tok.add_special_tokens(["<unk>", "<s>", "</s>"])
    tok.post_processor = tokenizers.processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tokenizer.json").write_text(
        json.dumps(json.loads(tok.to_str()), ensure_ascii=False, separators=(",", ":")), encoding="utf-8")


# MARK: - Corpus

CURATED = [
    "", " ", "  ", "a", "Hello", " Hello", "Hello world", "hello world", "HELLO WORLD", "Hi  Hello",
    "trailing space   ", "   leading space", " a  b ", "x  y", "x\ty", "x\t\ty", "x\n\ny", "x\r\ny", "x\r\n\r\n y",
    "x \r\n \t y", "line1\nline2\n", "\n\n\n", "\t", "\t\tindented", "    four spaces", "        eight spaces",
    "you…  ", "you…\u00a0\u00a0", "you…\u00a0\u00a0you…\u00a0\u00a0", "a\u3000b", "a\u2028b\u2029c", "a\x0bb\x0cc\x85d",
    "zero\u200bwidth", "em\u2003space", "narrow\u202fnbsp", "\ufeffBOM at start", "I'm", "you're", "we've", "he'll",
    "she'd", "it's", "IT'S", "DON'T", "YOU'RE", "We'Ve", "'s'", "''", "'''", "x'ſ", "x'ſt", "it’s curly", "O'Neil's",
    "rock 'n' roll", "'tis", "can't won't shouldn't", "A\n'll !!to?'d''d of, can't.", "def main():\n\tpass",
    "This\n\nis\na\ntest.", "let a = obj.toString();\ntoString();", "The company was founded in 2016.",
    "test $1 R2 #3 €4 £5 ¥6 ₣7 ₹8 ₱9 test", "I bought an apple for $1.00 at the store.", "生活的真谛是",
    "1234567890", "12345678901234567890", "3.14159", "1,000,000", "1e-10", "0x1F", "½ ¾ ²³", "١٢٣٤٥", "٠١٢٣٤٥٦٧٨٩",
    "𝟙𝟚𝟛", "Ⅻ Ⅳ", "①②③", "2024-05-01T12:34:56Z", "+1 (555) 123-4567", "v1.2.3-beta+exp.sha.5114f85",
    "<s>", "</s>", "<unk>", "<pad>", "<s>hello</s>", "<s> hello </s>", " <s> ", "<s><s></s>", "<|endoftext|>",
    "a<|endoftext|>b", "<|endoftext|><|endoftext|>", " <|endoftext|> ", "<|begin_of_text|>Hi<|end_of_text|>",
    "<|im_start|>user\nhi<|im_end|>", "[INST] hi [/INST]", "<0x0A>", "<0xFF>", "▁", "▁▁x", "▁hello▁world", "Ġhello",
    "ĊĠ", "<s", "s>", "<<s>>", "</s</s>>",
    "\ufffd", "\\xff\\xfe", "\x00", "\x01\x02\x7f", "\x1b[31mred\x1b[0m", "\ue000 private use", "\uffff\ufffe",
    "\U0010ffff", "\U0001d11e music", "\u0301x", "e\u0301", "é", "ﬁ ligature", "Ａｂｃ fullwidth", "ｶﾀｶﾅ half-width",
    "Ã©tÃ© mojibake", "â€™ â€œ â€", "Ω Ω", "Å Å", "ǅ ǈ ǋ", "İstanbul ıI", "ΣΑΣ σας", "straße STRASSE",
    "😀", "😀😀😀", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇯🇵🇺🇸", "❤️", "🧑🏿‍💻", "1️⃣", "🫠", "☺︎", "🏴󠁧󠁢󠁳󠁣󠁴󠁿",
    "I ❤️ NY 🗽", "emoji🙂inside", "👩‍❤️‍💋‍👨 kiss",
    "こんにちは、世界！", "東京は日本の首都です。", "カタカナとひらがなと漢字が混ざった文章。", "今日は2024年5月1日です",
    "吾輩は猫である。名前はまだ無い。", "ｺﾝﾆﾁﾊ", "漢字かな交じり文", "「引用」と『二重』",
    "مرحبا بالعالم", "اللغة العربية جميلة", "السَّلَامُ عَلَيْكُمْ", "١٢٣ أرقام عربية", "مرحبا world مزيج",
    "안녕하세요 세계", "한국어 문장입니다.", "नमस्ते दुनिया", "हिन्दी में लिखा गया वाक्य।", "Привет, мир!",
    "Съешь же ещё этих мягких французских булок", "Γειά σου Κόσμε", "שלום עולם", "สวัสดีชาวโลก",
    "Xin chào thế giới", "Tiếng Việt có dấu", "Zürich Ärger Öl", "façade naïve coöperate", "ğüşöçİ",
    "你好，世界！", "我爱北京天安门。", "中文标点：，。！？、；（）《》", "繁體中文與简体中文", "数字123和English混合",
    "def f(x):\n    return x ** 2\n", "for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}",
    "let x: [Int: String] = [:]\nprint(x)", "{\"key\": [1, 2.5, null, true], \"s\": \"\\u00e9\"}",
    "<html><body class=\"a\">Hi &amp; bye</body></html>", "SELECT * FROM t WHERE a = 'b' AND c >= 10;",
    "#!/bin/bash\nset -euo pipefail\necho \"$HOME\" | grep -v '^#'", "regex: ^[a-z]+(?:\\d{2,3})?$",
    "template<typename T> std::vector<T> v;", "x+=1;y-=2;z*=3;w/=4", "a==b!=c<=d>=e", "/* comment */ // line",
    "https://example.com/path?q=1&r=2#frag", "user@example.com", "C:\\Users\\name\\file.txt", "~/.config/app.toml",
    "<mask>", " <mask>", "a  <mask>b", "\t<mask> <mask>", "[x]", "[x]  y", "a[x]\n\nb", "<both>", "a  <both>  b",
    "x\u00a0<both>\u3000y", "word", "a word b", "words", "sword", "_word_", "word.", "(word)", "wordword", "1word",
    "Word WORD", "éword", "word\u0301", "Straße", "STRASSE straße", "x<|endoftext|>word",
    "<sep>", "a<sep>b", " <sep> ", "foo bar", "foofoo barbar", "<cls> x <cls>", " \u2581bar", "x  foo  y", "foo\tbar\n",
    "a" * 300, "😀" * 40, " " * 100, "1" * 200, "\n" * 30, "ab" * 120, "- " * 60, "\t" * 20, "中" * 150,
]

POOL_EXTRA = ["😀", "👍🏽", "👨‍👩‍👧‍👦", "🇯🇵", "\u00a0", "\u3000", "\t", "\n", "\r\n", "  ", "   ", "'s", "'ll",
              "<s>", "</s>", "<|endoftext|>", "▁", "\ufffd", "e\u0301", "١٢٣", "½", "…", "—", "“", "”", "«", "»"]


def windows(lines, rng, count, max_lines):
    out = []
    for _ in range(count):
        start = rng.randrange(len(lines))
        out.append("\n".join(lines[start:start + rng.randint(1, max_lines)]))
    return out


def snippets(texts, rng, count, low, high):
    out = []
    for _ in range(count):
        text = rng.choice(texts)
        start = rng.randrange(max(1, len(text) - low))
        out.append(text[start:start + rng.randint(low, high)])
    return out


def make_corpus(shared):
    rng = random.Random(0)
    shakespeare = (ROOT / "data" / "tinyshakespeare.txt").read_text(encoding="utf-8").split("\n")
    c4 = [json.loads(line)["text"] for line in open(shared / "text" / "c4_demo.jsonl", encoding="utf-8")]
    zh = [r[k] for r in json.load(open(shared / "sft" / "alpaca_zh_demo.json", encoding="utf-8"))
          for k in ("instruction", "output") if r[k]]
    sql = [json.loads(line)["text"] for line in open(shared / "sft" / "wikisql" / "train.jsonl", encoding="utf-8")]
    corpus = list(CURATED)
    corpus += windows(shakespeare, rng, 500, 4)
    corpus += snippets(c4, rng, 350, 20, 300)
    corpus += snippets(zh, rng, 350, 5, 150)
    corpus += snippets(sql, rng, 150, 30, 250)
    words = [w for text in corpus for w in text.split(" ") if w] + POOL_EXTRA * 20
    separators = [" ", " ", " ", "", "  ", "\t", "\n", "\u00a0", " \n", "\n\n", "   "]
    for _ in range(800):
        parts = [rng.choice(words) for _ in range(rng.randint(1, 25))]
        text = ""
        for part in parts:
            text += part + rng.choice(separators)
        if rng.random() < 0.3:
            text = rng.choice(separators) + text
        corpus.append(text[:400])
    return corpus


# MARK: - References

def encode_json(tok, text, special):
    return tok.encode(text, add_special_tokens=special).ids


def references(name, corpus):
    if name in SPM_TOKENIZERS:
        sp = spm.SentencePieceProcessor(model_file=str(TOKENIZERS / name / SPM_TOKENIZERS[name]))
        encode = lambda text, special: ([sp.bos_id()] if special else []) + sp.encode(text)
        decode = lambda ids, skip: sp.decode([i for i in ids if not (skip and (sp.is_control(i) or sp.is_unknown(i)))])
    else:
        variant = VARIANTS.get(name, {"base": name, "replace": {}})
        data = json.loads((TOKENIZERS / variant["base"] / "tokenizer.json").read_text(encoding="utf-8"))
        data.update(variant["replace"])
        tok = tokenizers.Tokenizer.from_str(json.dumps(data))
        encode = lambda text, special: encode_json(tok, text, special)
        decode = lambda ids, skip: tok.decode(ids, skip_special_tokens=skip)
    lines = []
    for index, text in enumerate(corpus):
        ids = encode(text, False)
        record = {"ids": ids}
        decoded = decode(ids, False)
        if decoded != text:
            record["decoded"] = decoded
        if index < SPECIAL_LINES:
            special = encode(text, True)
            record["special_ids"] = special
            record["decoded_skip"] = decode(special, True)
        lines.append(json.dumps(record, ensure_ascii=False, separators=(",", ":")))
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", default="/work/shared/data", help="the shared data folder (source of the files)")
    args = parser.parse_args()
    shared = Path(args.shared)
    copy_tokenizers(shared)
    corpus = make_corpus(shared)
    FIXTURES.mkdir(parents=True, exist_ok=True)
    with open(FIXTURES / "corpus.jsonl", "w", encoding="utf-8") as f:
        for text in corpus:
            f.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")
    expected = FIXTURES / "expected"
    expected.mkdir(exist_ok=True)
    (FIXTURES / "variants.json").write_text(json.dumps(VARIANTS, ensure_ascii=False, indent=1), encoding="utf-8")
    names = JSON_TOKENIZERS + ["chinese-sp-unigram"] + list(VARIANTS) + list(SPM_TOKENIZERS)
    for name in names:
        lines = references(name, corpus)
        (expected / f"{name}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(f"{name}: {len(lines)} lines, {sum(len(json.loads(l)['ids']) for l in lines)} ids")
    print(f"corpus: {len(corpus)} strings, {sum(len(t.encode()) for t in corpus)} bytes")


if __name__ == "__main__":
    main()
