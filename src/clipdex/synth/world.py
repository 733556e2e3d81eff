"""The synthetic world: scenes of coloured shapes, their scene graphs and captions.

Everything is deterministic from a seed. A scene is 1-4 objects on a 3x3
grid; captions come from a small grammar with attributes, counts and spatial
relations, with several paraphrases per scene. Hard negatives (for NegCLIP-style
training and the binding probes) come from editing the scene graph: swap the
colours of two objects, flip a relation, change a shape.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace

__all__ = [
    "CELLS",
    "COLORS",
    "SHAPES",
    "SIZES",
    "Obj",
    "Scene",
    "WorldConfig",
    "article",
    "captions_for",
    "cell_relation",
    "counterfactual",
    "cross_caption",
    "describe_pair",
    "hard_negatives",
    "has_object",
    "pair_holds",
    "pair_negatives",
    "place",
    "relation",
    "sample_scene",
    "sample_scenes",
    "training_caption",
    "vocabulary",
]

SHAPES = ("circle", "square", "triangle", "star", "hexagon", "diamond", "cross", "heart")
COLORS = {
    "red": (220, 30, 30), "orange": (245, 140, 20), "yellow": (240, 220, 30), "green": (40, 170, 60),
    "cyan": (40, 200, 210), "blue": (40, 70, 220), "purple": (140, 50, 190), "pink": (245, 130, 190),
    "brown": (130, 80, 35), "black": (20, 20, 20),
}
SIZES = {"small": 0.16, "medium": 0.24, "large": 0.32}
BACKGROUNDS = {"white": (250, 250, 250), "gray": (200, 200, 200), "beige": (235, 225, 200),
               "mint": (215, 240, 225), "sky": (215, 230, 250)}
WORDS = ("OPEN", "STOP", "SALE", "EXIT", "CAFE", "HOTEL", "PARK", "BOOK")
COUNT_WORDS = {2: "two", 3: "three", 4: "four"}
CELLS = [(r, c) for r in range(3) for c in range(3)]
ROW_NAMES = ("top", "middle", "bottom")
COL_NAMES = ("left", "center", "right")


@dataclass(frozen=True)
class Obj:
    """One object of a scene: what it is and which grid cell it sits in."""

    shape: str
    color: str
    size: str
    cell: tuple[int, int]

    def phrase(self, with_size: bool = True) -> str:
        size = f"{self.size} " if with_size else ""
        return f"{size}{self.color} {self.shape}"

    def with_article(self, with_size: bool = True) -> str:
        return article(self.phrase(with_size))


def article(phrase: str) -> str:
    """"an orange star", "a red star"."""
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def plural(shape: str) -> str:
    return shape + ("es" if shape.endswith(("s", "x")) else "s")


@dataclass(frozen=True)
class Scene:
    """A scene graph: the ground truth an image and its captions are made from."""

    objects: tuple[Obj, ...]
    background: str = "white"
    texture: bool = False
    word: str | None = None
    seed: int = 0

    def to_dict(self) -> dict[str, object]:
        return {
            "objects": [{"shape": o.shape, "color": o.color, "size": o.size, "cell": list(o.cell)}
                        for o in self.objects],
            "background": self.background, "texture": self.texture, "word": self.word, "seed": self.seed,
        }


@dataclass(frozen=True)
class WorldConfig:
    """The distribution scenes are drawn from."""

    min_objects: int = 1
    max_objects: int = 4
    p_texture: float = 0.2
    p_word: float = 0.0
    p_repeat: float = 0.15  # chance that a scene repeats an object (gives counts: "two red circles")
    shapes: tuple[str, ...] = SHAPES
    colors: tuple[str, ...] = tuple(COLORS)


def sample_scene(rng: random.Random, config: WorldConfig = WorldConfig(), seed: int = 0) -> Scene:
    """Draw one scene."""
    n = rng.randint(config.min_objects, config.max_objects)
    cells = rng.sample(CELLS, n)
    objects: list[Obj] = []
    for cell in cells:
        if objects and rng.random() < config.p_repeat:
            prev = objects[-1]
            objects.append(replace(prev, cell=cell))
        else:
            objects.append(Obj(rng.choice(config.shapes), rng.choice(config.colors), rng.choice(tuple(SIZES)), cell))
    word = rng.choice(WORDS) if rng.random() < config.p_word else None
    return Scene(tuple(objects), rng.choice(tuple(BACKGROUNDS)), rng.random() < config.p_texture, word, seed)


def sample_scenes(n: int, seed: int, config: WorldConfig = WorldConfig()) -> list[Scene]:
    """``n`` scenes, deterministic from ``seed``; scene ``i`` is the same whatever ``n``."""
    return [sample_scene(random.Random(seed * 1_000_003 + i), config, seed=i) for i in range(n)]


def relation(a: Obj, b: Obj) -> str:
    """Where ``a`` is relative to ``b``: the stronger of the two axes."""
    return cell_relation(a.cell, b.cell)


def cell_relation(a: tuple[int, int], b: tuple[int, int]) -> str:
    """:func:`relation` on grid cells (row, column)."""
    dr, dc = a[0] - b[0], a[1] - b[1]
    if abs(dc) >= abs(dr):
        return "left of" if dc < 0 else "right of"
    return "above" if dr < 0 else "below"


FLIP = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}


def describe_pair(a: Obj, b: Obj, rel: str | None = None, with_size: bool = False) -> str:
    """"a red circle left of a blue star"."""
    return f"{a.with_article(with_size)} {rel or relation(a, b)} {b.with_article(with_size)}"


def _groups(scene: Scene) -> list[tuple[Obj, int]]:
    counts: dict[tuple[str, str, str], list[Obj]] = {}
    for o in scene.objects:
        counts.setdefault((o.shape, o.color, o.size), []).append(o)
    return [(objs[0], len(objs)) for objs in counts.values()]


def _noun_phrase(obj: Obj, count: int, with_size: bool) -> str:
    if count == 1:
        return obj.with_article(with_size)
    size = f"{obj.size} " if with_size else ""
    return f"{COUNT_WORDS[count]} {size}{obj.color} {plural(obj.shape)}"


def place(obj: Obj) -> str:
    """Where an object is, in words: "in the top left", "on the right", "in the center"."""
    return place_name(obj.cell)


def place_name(cell: tuple[int, int]) -> str:
    """A grid cell in words (see :func:`place`)."""
    r, c = cell
    if (r, c) == (1, 1):
        return "in the center"
    if r == 1:
        return f"on the {COL_NAMES[c]}"
    if c == 1:
        return f"at the {ROW_NAMES[r]}"
    return f"in the {ROW_NAMES[r]} {COL_NAMES[c]}"


def captions_for(scene: Scene, n: int = 5, rng: random.Random | None = None) -> list[str]:
    """Up to ``n`` distinct paraphrases that are all true of the scene."""
    rng = rng or random.Random(scene.seed)
    groups = _groups(scene)
    templates = [_list_caption, _list_caption_sized, _relation_caption, _position_caption, _photo_caption]
    out: list[str] = []
    for attempt in range(4 * n):
        text = templates[attempt % len(templates)](scene, groups, rng)
        if scene.word and rng.random() < 0.5:
            text += f" and a sign that says {scene.word}"
        if text not in out:
            out.append(text)
        if len(out) == n:
            break
    return out


def _list_caption(scene: Scene, groups: list[tuple[Obj, int]], rng: random.Random) -> str:
    parts = [_noun_phrase(o, c, False) for o, c in groups]
    rng.shuffle(parts)
    return _join(parts)


def _list_caption_sized(scene: Scene, groups: list[tuple[Obj, int]], rng: random.Random) -> str:
    return _join([_noun_phrase(o, c, True) for o, c in groups])


def _relation_caption(scene: Scene, groups: list[tuple[Obj, int]], rng: random.Random) -> str:
    if len(scene.objects) < 2:
        return _position_caption(scene, groups, rng)
    a, b = rng.sample(list(scene.objects), 2)
    return describe_pair(a, b, with_size=rng.random() < 0.3)


def _position_caption(scene: Scene, groups: list[tuple[Obj, int]], rng: random.Random) -> str:
    obj = rng.choice(list(scene.objects))
    return _placed(obj.with_article(rng.random() < 0.5), place(obj), len(scene.objects) - 1)


def _placed(noun: str, where: str, others: int) -> str:
    """"a red circle on the left with 2 other shapes"."""
    return f"{noun} {where}" + (f" with {others} other shape{'s' if others > 1 else ''}" if others else "")


def _photo_caption(scene: Scene, groups: list[tuple[Obj, int]], rng: random.Random) -> str:
    return f"a picture of {_list_caption(scene, groups, rng)} on a {scene.background} background"


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def hard_negatives(scene: Scene, caption_pair: tuple[Obj, Obj] | None, rng: random.Random,
                   n: int = 3) -> list[str]:
    """Captions that are false of the scene but share its words (NegCLIP-style).

    For a two-object relation caption: the colours swapped, the relation
    flipped, the shapes swapped. Otherwise an attribute is replaced.
    """
    out: list[str] = []
    if caption_pair is not None:
        a, b = caption_pair
        rel = relation(a, b)
        if a.color != b.color:
            out.append(describe_pair(replace(a, color=b.color), replace(b, color=a.color), rel))
        out.append(describe_pair(a, b, FLIP[rel]))
        if a.shape != b.shape:
            out.append(describe_pair(replace(a, shape=b.shape), replace(b, shape=a.shape), rel))
    obj = rng.choice(list(scene.objects))
    other_color = rng.choice([c for c in COLORS if c != obj.color])
    out.append(article(f"{other_color} {obj.shape}"))
    other_shape = rng.choice([s for s in SHAPES if s != obj.shape])
    out.append(article(f"{obj.color} {other_shape}"))
    return out[:n]


def vocabulary() -> list[str]:
    """Every word the grammar can produce (for the built-in tokenizer)."""
    words = set(SHAPES) | {plural(s) for s in SHAPES} | set(COLORS) | set(SIZES) | set(BACKGROUNDS)
    words |= set(COUNT_WORDS.values()) | set(ROW_NAMES) | set(COL_NAMES) | {w.lower() for w in WORDS}
    words |= {"a", "an", "and", "of", "left", "right", "above", "below", "in", "the", "on", "at", "with",
              "other", "shape", "shapes", "picture", "photo", "background", "sign", "that", "says", "one",
              "center", "is", "there", "next", "to", "near", "big", "tiny", "dark", "light", "red"}
    return sorted(words)



def pair_holds(scene: Scene, a: Obj, rel: str, b: Obj) -> bool:
    """True when some two objects of the scene look like ``a`` and ``b`` and stand in ``rel``."""
    for x in scene.objects:
        for y in scene.objects:
            if x is y or (x.shape, x.color) != (a.shape, a.color) or (y.shape, y.color) != (b.shape, b.color):
                continue
            if relation(x, y) == rel:
                return True
    return False


def has_object(scene: Scene, shape: str, color: str) -> bool:
    return any(o.shape == shape and o.color == color for o in scene.objects)


def training_caption(scene: Scene, rng: random.Random, n_negatives: int = 3,
                     p_relation: float = 0.5, p_cross: float = 0.0, p_position: float = 0.0) -> tuple[str, list[str]]:
    """A true caption and hard negatives that are false of the scene.

    With probability ``p_cross`` (scenes of two or more objects) a
    :func:`cross_caption`; else with probability ``p_position`` a
    :func:`position_caption`; else with probability ``p_relation`` a relation
    between two objects, whose negatives swap colours, flip the relation or
    swap shapes; otherwise a paraphrase with attribute negatives.
    """
    if len(scene.objects) >= 2 and p_cross and rng.random() < p_cross:
        return cross_caption(scene, rng, n_negatives)
    if p_position and rng.random() < p_position:
        return position_caption(scene, rng, n_negatives)
    pair: tuple[Obj, Obj] | None = None
    if len(scene.objects) >= 2 and rng.random() < p_relation:
        a, b = rng.sample(list(scene.objects), 2)
        pair = (a, b)
        positive = describe_pair(a, b)
    else:
        positive = rng.choice(captions_for(scene, 5, rng))
    return positive, pair_negatives(scene, pair, rng, n_negatives)


def cross_caption(scene: Scene, rng: random.Random, n_negatives: int = 3) -> tuple[str, list[str]]:
    """One object of the scene ("a pink square", or "a pink square on the left"), against negatives
    made of the scene's own attributes recombined: another object's shape with this colour, its
    colour with another shape, this object in another object's place.

    Every word of such a negative is true of something in the image, so only an
    image tower that binds colour to shape (and shape to place) can reject it;
    the caption and its negatives differ in words, so the text tower can tell
    them apart from the first step. This breaks the trap in which neither tower
    learns binding because the other has not.
    """
    objects = list(scene.objects)
    obj = rng.choice(objects)
    present = {(o.color, o.shape) for o in objects}
    crossed = sorted({(obj.color, o.shape) for o in objects} | {(o.color, obj.shape) for o in objects})
    crossed = [c for c in crossed if c not in present]
    if rng.random() < 0.5:
        positive = f"{obj.with_article(False)} {place(obj)}"
        negatives = [f"{obj.with_article(False)} {place(o)}" for o in objects
                     if not any((x.color, x.shape, x.cell) == (obj.color, obj.shape, o.cell) for x in objects)]
        negatives += [f"{article(f'{color} {shape}')} {place(obj)}" for color, shape in crossed]
    else:
        positive = obj.with_article(False)
        negatives = [article(f"{color} {shape}") for color, shape in crossed]
    negatives = list(dict.fromkeys(negatives))
    rng.shuffle(negatives)
    negatives = negatives[:n_negatives]
    while len(negatives) < n_negatives:
        color, shape = rng.choice(tuple(COLORS)), rng.choice(SHAPES)
        filler = article(f"{color} {shape}")
        if (color, shape) not in present and filler not in negatives:
            negatives.append(filler)
    return positive, negatives


def position_caption(scene: Scene, rng: random.Random, n_negatives: int = 3) -> tuple[str, list[str]]:
    """One object, its place and how many others share the scene ("a red circle on the left with 2
    other shapes"), against the same words with another place, another count or another object.

    Every negative is false of the scene: the place holds no object of that
    colour and shape, the count is not the scene's, and the swapped object is
    nowhere in it. They teach the image embedding where each object is and how
    many there are, which the other captions' negatives never ask.
    """
    objects = list(scene.objects)
    obj = rng.choice(objects)
    size = f"{obj.size} " if rng.random() < 0.5 else ""
    noun, others = article(f"{size}{obj.color} {obj.shape}"), len(objects) - 1
    taken = {o.cell for o in objects if (o.color, o.shape) == (obj.color, obj.shape)}
    places = [place(replace(obj, cell=cell)) for cell in CELLS if cell not in taken]
    counts = [n for n in range(4) if n != others]
    present = {(o.color, o.shape) for o in objects}
    absent = [(c, sh) for c in COLORS for sh in SHAPES if (c, sh) not in present
              and (c == obj.color or sh == obj.shape)]  # one word changed, so the twin differs in binding only
    kinds = [lambda: _placed(noun, rng.choice(places), others),
             lambda: _placed(noun, place(obj), rng.choice(counts)),
             lambda: _placed(article(size + " ".join(rng.choice(absent))), place(obj), others)]
    negatives: list[str] = []
    for attempt in range(4 * n_negatives):
        text = kinds[attempt % len(kinds)]()
        if text not in negatives:
            negatives.append(text)
        if len(negatives) == n_negatives:
            break
    return _placed(noun, place(obj), others), negatives


def pair_negatives(scene: Scene, pair: tuple[Obj, Obj] | None, rng: random.Random, n: int = 3) -> list[str]:
    """``n`` hard negatives for a caption about ``pair`` (or about the scene), all false of it."""
    negatives = [c for c in hard_negatives(scene, pair, rng, n=5) if not _true_of(scene, c)]
    while len(negatives) < n:
        other = rng.choice(SHAPES)
        color = rng.choice(tuple(COLORS))
        if not has_object(scene, other, color):
            negatives.append(article(f"{color} {other}"))
    return negatives[:n]


def counterfactual(scene: Scene, rng: random.Random) -> tuple[Scene, tuple[Obj, Obj], Scene, tuple[Obj, Obj]] | None:
    """A two-object relation caption, and a minimally edited scene with its own caption.

    The edit either swaps the two objects' colours or swaps their places, so
    the pair of (image, caption) pairs differ only in binding: put in one
    batch, each caption is the other image's hardest negative.
    """
    pairs = [(a, b) for a in scene.objects for b in scene.objects if a is not b and a.color != b.color
             and (a.shape, a.color) != (b.shape, b.color)]
    if not pairs:
        return None
    a, b = rng.choice(pairs)
    if rng.random() < 0.5:
        a2, b2 = replace(a, color=b.color), replace(b, color=a.color)
    else:
        a2, b2 = replace(a, cell=b.cell), replace(b, cell=a.cell)
    others = tuple(o for o in scene.objects if o is not a and o is not b)
    edited = replace(scene, objects=(a2, b2, *others))
    return scene, (a, b), edited, (a2, b2)


def _true_of(scene: Scene, caption: str) -> bool:
    words = caption.split()
    if len(words) == 3 and words[0] in ("a", "an"):
        return has_object(scene, words[2], words[1])
    for rel in FLIP:
        marker = f" {rel} "
        if marker in caption:
            left, right = caption.split(marker)
            lw, rw = left.split(), right.split()
            a = Obj(lw[-1], lw[-2], "small", (0, 0))
            b = Obj(rw[-1], rw[-2], "small", (0, 0))
            return pair_holds(scene, a, rel, b)
    return False


_SIGN = re.compile(r"^(.*) and a sign that says (\w+)$")
_PICTURE = re.compile(r"^a picture of (.*) on a (\w+) background$")
_NOUN = re.compile(r"^(an?|two|three|four) (?:(small|medium|large) )?(\w+) (\w+)$")
_NUMBER = {"a": 1, "an": 1, **{word: n for n, word in COUNT_WORDS.items()}}
_SINGULAR = {**{plural(s): s for s in SHAPES}, **{s: s for s in SHAPES}}
_CELL_OF_PLACE = {place_name(cell): cell for cell in CELLS}
_PLACE_WORDS = "|".join(sorted(_CELL_OF_PLACE, key=len, reverse=True))
_POSITIONED = re.compile(rf"^(an? (?:\w+ )?\w+ \w+) ({_PLACE_WORDS})(?: with (\d) other shapes?)?$")

ScenePredicate = Callable[[Scene], bool]


def caption_predicate(caption: str) -> ScenePredicate:
    """What a caption of the grammar claims, as a test on any scene (parsed once, applied to many).

    Reads captions as :func:`captions_for` writes them: a list ("a red circle and
    two blue stars") says those objects are there, in those numbers; a relation
    says some two such objects stand so; a position caption names one object, its
    place and how many other shapes share the scene (none when it says none); a
    picture adds the background, a sign its word. A caption outside the grammar
    is true of no scene.
    """
    tests: list[ScenePredicate] = []
    sign = _SIGN.match(caption)
    if sign:
        word = sign[2]
        tests.append(lambda scene: scene.word == word)
        caption = sign[1]
    picture = _PICTURE.match(caption)
    if picture:
        background = picture[2]
        tests.append(lambda scene: scene.background == background)
        caption = picture[1]
    tests.append(_claim(caption))
    return lambda scene: all(test(scene) for test in tests)


def caption_holds(scene: Scene, caption: str) -> bool:
    """Whether ``caption`` is true of ``scene`` (see :func:`caption_predicate`)."""
    return caption_predicate(caption)(scene)


def _claim(text: str) -> ScenePredicate:
    for rel in FLIP:
        if f" {rel} " in text:
            left, right = (_noun(part) for part in text.split(f" {rel} ", 1))
            if left is None or right is None or left[0] != 1 or right[0] != 1:
                return lambda scene: False
            return lambda scene: any(x is not y and _fits(x, left) and _fits(y, right) and relation(x, y) == rel
                                     for x in scene.objects for y in scene.objects)
    if _POSITIONED.match(text):
        placed = parse_placed(text)
        if placed is None:
            return lambda scene: False
        noun, cell, others = placed
        return lambda scene: len(scene.objects) == (others or 0) + 1 and any(
            _fits(o, noun) and o.cell == cell for o in scene.objects)
    nouns = [_noun(part) for part in re.split(r", | and ", text)]
    if any(n is None for n in nouns):
        return lambda scene: False
    wanted: Counter[tuple[str | None, str, str]] = Counter()
    for n in nouns:  # "a purple diamond and a purple diamond": two of them (sizes told apart by the list)
        if n is not None:
            wanted[n[1:]] += n[0]
    return lambda scene: all(sum(_fits(o, (1, *key)) for o in scene.objects) == count
                             for key, count in wanted.items())


def parse_placed(text: str) -> tuple[tuple[int, str | None, str, str], tuple[int, int], int | None] | None:
    """"a small red circle on the left with 2 other shapes" -> ((1, "small", "red", "circle"), (1, 0), 2).

    The other shapes are None when the caption does not say (a cross caption,
    "a red circle on the left"); None outside this template.
    """
    m = _POSITIONED.match(text)
    noun = _noun(m[1]) if m else None
    if m is None or noun is None:
        return None
    return noun, _CELL_OF_PLACE[m[2]], None if m[3] is None else int(m[3])


def _noun(text: str) -> tuple[int, str | None, str, str] | None:
    """"two small red circles" -> (2, "small", "red", "circle"); None outside the grammar."""
    m = _NOUN.match(text.strip())
    if m is None or m[3] not in COLORS or m[4] not in _SINGULAR:
        return None
    return _NUMBER[m[1]], m[2], m[3], _SINGULAR[m[4]]


def _fits(obj: Obj, noun: tuple[int, str | None, str, str]) -> bool:
    _, size, color, shape = noun
    return (obj.color, obj.shape) == (color, shape) and size in (None, obj.size)
