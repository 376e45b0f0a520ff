"""corpus.py - the chat corpus the embedded trained model learns from.

Written for this project. Deterministic: a fixed seed, no clock, no hashing of
Python objects, so the same files come out on every machine.

Every item is a fact with an exact answer (capitals, days and months, small
sums, unit conversions, opposites, colours, counting), in Japanese and in
English, asked with one of three phrasings. One phrasing of each fact is held
out: the held-out split asks facts the model has seen in words it has not, so
it measures whether the model learned the fact and not only a string.

Splits (testdata/trained/data/):
  train.jsonl     {"messages": [...]} chat conversations (the last assistant
                  turn is what the model is trained to produce) and
                  {"text": ...} prose paragraphs and multiple-choice drills
  heldout.jsonl   {"messages": [..., user], "think": bool, "answer": str,
                   "reasoning": str} prompts of the same distribution
  choices.jsonl   JCommonsenseQA's fields: q_id, question, choice0..choice4,
                  label (0-4)
  prose-heldout.txt  paragraphs for perplexity and KL divergence

A /think turn is answered with a short reasoning, "\\n</think>\\n", then the
answer; a /no_think turn with the answer alone. The chat template (the
synthetic tokenizer's, rendered by transformers in train.py) adds the rest.
"""
import json
import os
import random
import sys

SEED = 20261201

CAPITALS = [  # (English country, English capital, Japanese country, Japanese capital)
    ("Japan", "Tokyo", "日本", "東京"), ("France", "Paris", "フランス", "パリ"),
    ("Italy", "Rome", "イタリア", "ローマ"), ("Germany", "Berlin", "ドイツ", "ベルリン"),
    ("Spain", "Madrid", "スペイン", "マドリード"), ("England", "London", "イギリス", "ロンドン"),
    ("China", "Beijing", "中国", "北京"), ("Korea", "Seoul", "韓国", "ソウル"),
    ("Egypt", "Cairo", "エジプト", "カイロ"), ("Russia", "Moscow", "ロシア", "モスクワ"),
    ("Canada", "Ottawa", "カナダ", "オタワ"), ("Australia", "Canberra", "オーストラリア", "キャンベラ"),
    ("Thailand", "Bangkok", "タイ", "バンコク"), ("Kenya", "Nairobi", "ケニア", "ナイロビ"),
    ("Peru", "Lima", "ペルー", "リマ"), ("Greece", "Athens", "ギリシャ", "アテネ"),
    ("Norway", "Oslo", "ノルウェー", "オスロ"), ("Austria", "Vienna", "オーストリア", "ウィーン"),
    ("Portugal", "Lisbon", "ポルトガル", "リスボン"), ("Cuba", "Havana", "キューバ", "ハバナ"),
]
DAYS_EN = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
DAYS_JA = ["月曜日", "火曜日", "水曜日", "木曜日", "金曜日", "土曜日", "日曜日"]
MONTHS_EN = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
             "October", "November", "December"]
MONTHS_JA = [f"{i}月" for i in range(1, 13)]
OPPOSITES = [("hot", "cold", "暑い", "寒い"), ("big", "small", "大きい", "小さい"),
             ("fast", "slow", "速い", "遅い"), ("high", "low", "高い", "低い"),
             ("new", "old", "新しい", "古い"), ("long", "short", "長い", "短い"),
             ("light", "heavy", "軽い", "重い"), ("bright", "dark", "明るい", "暗い"),
             ("strong", "weak", "強い", "弱い"), ("early", "late", "早い", "遅い"),
             ("wide", "narrow", "広い", "狭い"), ("easy", "difficult", "易しい", "難しい")]
COLOURS = [("banana", "yellow", "バナナ", "黄色"), ("the sky", "blue", "空", "青"),
           ("snow", "white", "雪", "白"), ("grass", "green", "草", "緑"),
           ("a tomato", "red", "トマト", "赤"), ("coal", "black", "石炭", "黒"),
           ("an orange", "orange", "みかん", "オレンジ色"), ("a crow", "black", "カラス", "黒"),
           ("milk", "white", "牛乳", "白"), ("a strawberry", "red", "いちご", "赤")]
UNITS = [  # (English from, English to, Japanese from, Japanese to, factor)
    ("kilometers", "meters", "キロメートル", "メートル", 1000),
    ("meters", "centimeters", "メートル", "センチメートル", 100),
    ("hours", "minutes", "時間", "分", 60),
    ("kilograms", "grams", "キログラム", "グラム", 1000),
]


def fact(kind, lang, prompts, answer, reasoning):
    """One fact: three phrasings of the question, its answer, its reasoning."""
    assert len(prompts) == 3
    return {"kind": kind, "lang": lang, "prompts": prompts, "answer": answer, "reasoning": reasoning}


def facts():
    out = []
    for en_c, en_cap, ja_c, ja_cap in CAPITALS:
        out.append(fact("capital", "en", [f"What is the capital of {en_c}?", f"Which city is the capital of {en_c}?",
                                          f"Tell me the capital of {en_c}."],
                        f"The capital of {en_c} is {en_cap}.",
                        f"The user asks for the capital of {en_c}. The capital of {en_c} is {en_cap}."))
        out.append(fact("capital", "ja", [f"{ja_c}の首都はどこですか？", f"{ja_c}の首都は？",
                                          f"{ja_c}の首都を教えてください。"],
                        f"{ja_c}の首都は{ja_cap}です。",
                        f"ユーザーは{ja_c}の首都を聞いています。{ja_c}の首都は{ja_cap}です。"))
    for i in range(7):
        en, ja, en_n, ja_n = DAYS_EN[i], DAYS_JA[i], DAYS_EN[(i + 1) % 7], DAYS_JA[(i + 1) % 7]
        out.append(fact("day", "en", [f"What day comes after {en}?", f"Which day follows {en}?",
                                      f"Tell me the day after {en}."],
                        f"The day after {en} is {en_n}.",
                        f"The days go in order. After {en} comes {en_n}."))
        out.append(fact("day", "ja", [f"{ja}の次は何曜日ですか？", f"{ja}の次の曜日は？",
                                      f"{ja}の次の曜日を教えてください。"],
                        f"{ja}の次は{ja_n}です。",
                        f"曜日の順番を考えます。{ja}の次は{ja_n}です。"))
    for i in range(12):
        en, ja, en_n, ja_n = MONTHS_EN[i], MONTHS_JA[i], MONTHS_EN[(i + 1) % 12], MONTHS_JA[(i + 1) % 12]
        out.append(fact("month", "en", [f"What month comes after {en}?", f"Which month follows {en}?",
                                        f"Tell me the month after {en}."],
                        f"The month after {en} is {en_n}.",
                        f"The months go in order. After {en} comes {en_n}."))
        out.append(fact("month", "ja", [f"{ja}の次は何月ですか？", f"{ja}の次の月は？",
                                        f"{ja}の次の月を教えてください。"],
                        f"{ja}の次は{ja_n}です。",
                        f"月の順番を考えます。{ja}の次は{ja_n}です。"))
    for a in range(1, 6):
        for b in range(1, 6):
            s = a + b
            out.append(fact("sum", "en", [f"What is {a} plus {b}?", f"What is {a} + {b}?", f"Add {a} and {b}."],
                            f"{a} + {b} = {s}.", f"I add {b} to {a}. {a} + {b} = {s}."))
            out.append(fact("sum", "ja", [f"{a}足す{b}は？", f"{a}+{b}はいくつですか？", f"{a}と{b}を足してください。"],
                            f"{a}+{b}={s}です。", f"{a}に{b}を足します。{a}+{b}={s}です。"))
    for en_f, en_t, ja_f, ja_t, k in UNITS:
        for n in range(1, 10):
            out.append(fact("unit", "en", [f"How many {en_t} are in {n} {en_f}?", f"Convert {n} {en_f} to {en_t}.",
                                           f"What is {n} {en_f} in {en_t}?"],
                            f"{n} {en_f} is {n * k} {en_t}.",
                            f"One of the {en_f} is {k} {en_t}. {n} times {k} is {n * k}."))
            out.append(fact("unit", "ja", [f"{n}{ja_f}は何{ja_t}ですか？", f"{n}{ja_f}を{ja_t}に直してください。",
                                           f"{n}{ja_f}は何{ja_t}？"],
                            f"{n}{ja_f}は{n * k}{ja_t}です。",
                            f"1{ja_f}は{k}{ja_t}です。{n}×{k}={n * k}です。"))
    for en_a, en_b, ja_a, ja_b in OPPOSITES:
        for x, y, u, v in ((en_a, en_b, ja_a, ja_b), (en_b, en_a, ja_b, ja_a)):
            out.append(fact("opposite", "en", [f"What is the opposite of {x}?", f"What word means the opposite of {x}?",
                                               f"Give me the opposite of {x}."],
                            f"The opposite of {x} is {y}.", f"The user wants an antonym. The opposite of {x} is {y}."))
            if u == "遅い":  # 遅い is the opposite of both 速い and 早い: ask it only one way
                continue
            out.append(fact("opposite", "ja", [f"「{u}」の反対は何ですか？", f"「{u}」の反対の言葉は？",
                                               f"「{u}」の反対の言葉を教えてください。"],
                            f"「{u}」の反対は「{v}」です。", f"反対の意味の言葉を考えます。「{u}」の反対は「{v}」です。"))
    for en_t, en_c, ja_t, ja_c in COLOURS:
        out.append(fact("colour", "en", [f"What color is {en_t}?", f"Which color is {en_t}?",
                                         f"Tell me the color of {en_t}."],
                        f"{en_t[0].upper() + en_t[1:]} is {en_c}.",
                        f"I think about {en_t}. {en_t[0].upper() + en_t[1:]} is {en_c}."))
        out.append(fact("colour", "ja", [f"{ja_t}は何色ですか？", f"{ja_t}の色は？", f"{ja_t}の色を教えてください。"],
                        f"{ja_t}は{ja_c}です。", f"{ja_t}の色を考えます。{ja_t}は{ja_c}です。"))
    for a in range(1, 7):
        for n in (3, 4):
            seq = [str(i) for i in range(a, a + n)]
            b = a + n - 1
            out.append(fact("count", "en", [f"Count from {a} to {b}.", f"Please count from {a} to {b}.",
                                            f"Count up from {a} to {b}."],
                            ", ".join(seq) + ".", f"I start at {a} and stop at {b}. " + ", ".join(seq) + "."))
            out.append(fact("count", "ja", [f"{a}から{b}まで数えてください。", f"{a}から{b}まで数えて。",
                                            f"{a}から{b}まで順に数えてください。"],
                            "、".join(seq) + "です。", f"{a}から始めて{b}で止めます。" + "、".join(seq) + "です。"))
    return out


def user_text(prompt, think):
    return prompt + (" /think" if think else " /no_think")


def assistant_text(f, think):
    """What the model writes after the generation prompt."""
    return (f["reasoning"] + "\n</think>\n" + f["answer"]) if think else f["answer"]


def prose_paragraph(rng, fs):
    """A few fact sentences in one language: plain text for perplexity."""
    lang = rng.choice(["en", "ja"])
    pool = [f for f in fs if f["lang"] == lang and f["kind"] != "count"]
    sents = [rng.choice(pool)["answer"] for _ in range(rng.randint(3, 6))]
    return (" " if lang == "en" else "").join(sents)


JCQA_DESCRIPTION = "以下は、タスクを説明する指示と、文脈のある入力の組み合わせです。要求を適切に満たす応答を書きなさい。\n\n"


def jcqa_prompt(question, choices):
    """lm-evaluation-harness's ja_leaderboard_jcommonsenseqa doc_to_text."""
    return ("### 指示：\n出力は以下から選択してください：\n" + "".join(f"- {c}\n" for c in choices)
            + "\n### 入力：\n" + question + "\n\n### 応答：")


def mc_items(rng, fs, n, id0):
    """JCommonsenseQA-shaped items from the Japanese facts with a one-word
    answer: the question, the right answer and four others of its kind."""
    by_kind = {}
    for en_c, en_cap, ja_c, ja_cap in CAPITALS:
        by_kind.setdefault("capital", []).append((f"{ja_c}の首都はどこ？", ja_cap))
    for i in range(7):
        by_kind.setdefault("day", []).append((f"{DAYS_JA[i]}の次の曜日は？", DAYS_JA[(i + 1) % 7]))
    for i in range(12):
        by_kind.setdefault("month", []).append((f"{MONTHS_JA[i]}の次の月は？", MONTHS_JA[(i + 1) % 12]))
    for en_t, en_c, ja_t, ja_c in COLOURS:
        by_kind.setdefault("colour", []).append((f"{ja_t}は何色？", ja_c))
    for en_a, en_b, ja_a, ja_b in OPPOSITES:
        if ja_a != "早い":
            by_kind.setdefault("opposite", []).append((f"「{ja_a}」の反対の言葉は？", ja_b))
    kinds = sorted(by_kind)
    items = []
    for k in range(n):
        kind = kinds[k % len(kinds)]
        q, right = rng.choice(by_kind[kind])
        others = sorted({a for _, a in by_kind[kind]} - {right})
        choices = rng.sample(others, 4) + [right]
        rng.shuffle(choices)
        items.append({"q_id": id0 + k, "question": q, **{f"choice{i}": c for i, c in enumerate(choices)},
                      "label": choices.index(right)})
    return items


def build():
    rng = random.Random(SEED)
    fs = facts()
    train, heldout = [], []
    for f in fs:
        held = rng.randrange(3)
        for p in range(3):
            if p == held:
                think = rng.random() < 0.5
                heldout.append({"messages": [{"role": "user", "content": user_text(f["prompts"][p], think)}],
                                "think": think, "answer": f["answer"], "reasoning": f["reasoning"],
                                "kind": f["kind"], "lang": f["lang"]})
                continue
            for think in (False, True):
                train.append({"messages": [{"role": "user", "content": user_text(f["prompts"][p], think)},
                                           {"role": "assistant", "content": assistant_text(f, think)}]})
    # multi-turn: an earlier exchange (the template keeps only its answer) before the question
    for _ in range(len(fs) // 3):
        a, b = rng.choice(fs), rng.choice(fs)
        pa, pb = rng.randrange(3), rng.randrange(3)
        think = rng.random() < 0.5
        train.append({"messages": [{"role": "user", "content": user_text(a["prompts"][pa], False)},
                                   {"role": "assistant", "content": a["answer"]},
                                   {"role": "user", "content": user_text(b["prompts"][pb], think)},
                                   {"role": "assistant", "content": assistant_text(b, think)}]})
    for _ in range(400):
        train.append({"text": prose_paragraph(rng, fs)})
    for item in mc_items(rng, fs, 300, 0):
        choices = [item[f"choice{i}"] for i in range(5)]
        train.append({"text": JCQA_DESCRIPTION + jcqa_prompt(item["question"], choices) + "\n" + choices[item["label"]]})
    rng.shuffle(train)
    choices = mc_items(random.Random(SEED + 1), fs, 100, 1000)
    prose = "\n\n".join(prose_paragraph(random.Random(SEED + 2 + i), fs) for i in range(60)) + "\n"
    return train, heldout, choices, prose


def write_jsonl(path, rows):
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n")
    os.replace(path + ".tmp", path)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "data")
    os.makedirs(out, exist_ok=True)
    train, heldout, choices, prose = build()
    write_jsonl(os.path.join(out, "train.jsonl"), train)
    write_jsonl(os.path.join(out, "heldout.jsonl"), heldout)
    write_jsonl(os.path.join(out, "choices.jsonl"), choices)
    with open(os.path.join(out, "prose-heldout.txt"), "w", encoding="utf-8") as f:
        f.write(prose)
    print(f"corpus: {len(train)} training items, {len(heldout)} held-out prompts, {len(choices)} choice items")


if __name__ == "__main__":
    main()
