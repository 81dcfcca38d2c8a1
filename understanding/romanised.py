"""Pinyin typed without characters (a phone with no Chinese input method, a foreign keyboard):
"xuexinwang mima wangle" becomes 学信网密码忘了, the characters the training data uses.

The pinyin speller (pinyin_speller.py) calls `to_characters` on each run of Latin letters, with
its index of the training data's words by toneless pinyin and, for syllables outside those words,
the training data's most common character of each sound. A run is read as pinyin only when all of
it is: every space-separated piece splits into syllables of standard pinyin (SYLLABLES), there
are at least two syllables, and at least one word of the training data is found in them; anything
else (hello, ok, are you a bot, a URL) is left as typed. Spaces may separate syllables or words
("mi ma", "mima"); a syllable never spans one, a word may. Among the ways to read a run, the one
that covers the most syllables with training words wins, then the one with fewer pieces.
"""

from __future__ import annotations

import re
from functools import cache

# Toneless pinyin syllables (pypinyin's readings, without the interjections m, n, ng, hm, hng and
# the rare biang, fiao, bong, cei, den, din, dia, kei, len, lo, nia, nun, tei, wong, zhei), and
# the spellings students type for ü: lv, lve, nv, nve and lue, nue.
_SYLLABLE_LIST = """
    a ai an ang ao ba bai ban bang bao bei ben beng bi bian biao bie bin bing bo bu ca cai can
    cang cao ce cen ceng cha chai chan chang chao che chen cheng chi chong chou chu chua chuai
    chuan chuang chui chun chuo ci cong cou cu cuan cui cun cuo da dai dan dang dao de dei deng
    di dian diao die ding diu dong dou du duan dui dun duo e ei en eng er fa fan fang fei fen
    feng fo fou fu ga gai gan gang gao ge gei gen geng gong gou gu gua guai guan guang gui gun
    guo ha hai han hang hao he hei hen heng hong hou hu hua huai huan huang hui hun huo ji jia
    jian jiang jiao jie jin jing jiong jiu ju juan jue jun ka kai kan kang kao ke ken keng kong
    kou ku kua kuai kuan kuang kui kun kuo la lai lan lang lao le lei leng li lia lian liang
    liao lie lin ling liu long lou lu luan lun luo lv lve lue ma mai man mang mao me mei men
    meng mi mian miao mie min ming miu mo mou mu na nai nan nang nao ne nei nen neng ni nian
    niang niao nie nin ning niu nong nou nu nuan nuo nv nve nue o ou pa pai pan pang pao pei
    pen peng pi pian piao pie pin ping po pou pu qi qia qian qiang qiao qie qin qing qiong qiu
    qu quan que qun ran rang rao re ren reng ri rong rou ru rua ruan rui run ruo sa sai san
    sang sao se sen seng sha shai shan shang shao she shei shen sheng shi shou shu shua shuai
    shuan shuang shui shun shuo si song sou su suan sui sun suo ta tai tan tang tao te teng ti
    tian tiao tie ting tong tou tu tuan tui tun tuo wa wai wan wang wei wen weng wo wu xi xia
    xian xiang xiao xie xin xing xiong xiu xu xuan xue xun ya yan yang yao ye yi yin ying yo
    yong you yu yuan yue yun za zai zan zang zao ze zei zen zeng zha zhai zhan zhang zhao zhe
    zhen zheng zhi zhong zhou zhu zhua zhuai zhuan zhuang zhui zhun zhuo zi zong zou zu zuan
    zui zun zuo
"""
SYLLABLES = frozenset(_SYLLABLE_LIST.split())
LONGEST_SYLLABLE = max(map(len, SYLLABLES))
LONGEST_WORD = 4  # syllables: the speller indexes words of two to four characters
# A run of Latin letters, spaces and apostrophes (xi'an) between two letters: the normaliser has
# already made the text lower case and half-width.
LATIN_RUN = re.compile(r"[a-z](?:[a-z' ]*[a-z])?")
MAX_RUN_LETTERS = 120  # a longer run is not a typed question: left as it is, at no cost


def syllable_readings(piece: str) -> list[list[str]]:
    """Every way to split `piece` (letters only) into syllables; [] when there is none."""

    @cache
    def from_(start: int) -> tuple[tuple[str, ...], ...]:
        if start == len(piece):
            return ((),)
        found: list[tuple[str, ...]] = []
        for end in range(start + 1, min(len(piece), start + LONGEST_SYLLABLE) + 1):
            if piece[start:end] in SYLLABLES:
                found += [(piece[start:end], *rest) for rest in from_(end)]
        return tuple(found[:16])  # bounded: a piece has few readings, never more than this

    return [list(reading) for reading in from_(0)]


def to_characters(run: str, index: dict[str, str], characters: dict[str, str]) -> str | None:
    """The characters `run` stands for, or None when it is not all pinyin or names no training
    word (see the module)."""
    if len(run) > MAX_RUN_LETTERS:
        return None
    pieces = [p for p in re.split(r"[ ']+", run) if p]
    readings = [syllable_readings(piece) for piece in pieces]
    if not all(readings):
        return None
    best: tuple[int, int, str] | None = None  # (syllables in words, -pieces, text)
    for syllables in _combinations(readings):
        if len(syllables) < 2:
            continue
        covered, parts = _read(tuple(syllables), index, characters)
        if covered == 0:
            continue
        candidate = (covered, -len(parts), "".join(parts))
        if best is None or candidate[:2] > best[:2]:
            best = candidate
    return best[2] if best else None


def _combinations(readings: list[list[list[str]]]) -> list[list[str]]:
    """The syllables of the whole run, one reading per piece; at most 64 combinations."""
    combined: list[list[str]] = [[]]
    for options in readings:
        combined = [done + option for done in combined for option in options][:64]
    return combined


def _read(
    syllables: tuple[str, ...], index: dict[str, str], characters: dict[str, str]
) -> tuple[int, list[str]]:
    """The best reading of `syllables` as training words and single characters: (syllables
    inside words, the parts). Dynamic programming over positions, most covered first, then fewest
    parts."""
    count = len(syllables)
    best: list[tuple[int, int, list[str]] | None] = [None] * (count + 1)
    best[0] = (0, 0, [])
    for start in range(count):
        here = best[start]
        if here is None:
            continue
        covered, pieces, parts = here
        options: list[tuple[int, str]] = []
        for length in range(2, min(LONGEST_WORD, count - start) + 1):
            word = index.get(" ".join(syllables[start : start + length]))
            if word:
                options.append((length, word))
        options.append((1, characters.get(syllables[start], syllables[start])))
        for length, text in options:
            gained = length if length > 1 else 0
            candidate = (covered + gained, pieces + 1, [*parts, text])
            current = best[start + length]
            if current is None or (candidate[0], -candidate[1]) > (current[0], -current[1]):
                best[start + length] = candidate
    final = best[count]
    assert final is not None  # every syllable can stand alone
    return final[0], final[2]


def convert(text: str, index: dict[str, str], characters: dict[str, str]) -> str:
    """`text` with each run of pinyin replaced by its characters (see the module)."""
    if not LATIN_RUN.search(text):
        return text

    def replaced(found: re.Match[str]) -> str:
        return to_characters(found.group(0), index, characters) or found.group(0)

    return LATIN_RUN.sub(replaced, text)
