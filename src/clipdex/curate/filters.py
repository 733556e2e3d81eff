"""Filters: small named units that look at pass-1 scores and reject samples with a reason.

A filter sees only the samples that survived the filters before it (``alive``)
and returns which of them it rejects and why. Global filters (top fraction,
dedup, clustering, decontamination) decide over all survivors at once, so a
run is exact over the whole pool however it was sharded.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from clipdex.curate import dedup
from clipdex.curate.context import Context
from clipdex.errors import ClipdexError, FilterSpecError

__all__ = ["FILTERS", "Filter", "Rejection", "parse_filter"]

Rejection = tuple[np.ndarray, list[str]]  # rejected row indices, one reason each


class Filter:
    """Base of every filter: parameters with defaults, what pass 1 must compute, and ``apply``."""

    name: ClassVar[str]
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, **params: Any) -> None:
        unknown = set(params) - set(self.defaults)
        if unknown:
            accepted = ", ".join(self.defaults) or "none"
            raise FilterSpecError(f"filter {self.name!r}: unknown parameter(s) {', '.join(sorted(unknown))}. "
                               f"Accepted: {accepted}")
        self.params = {**self.defaults, **params}
        self.check()

    def check(self) -> None:
        """Validate parameters (raise FilterSpecError with a one-line reason)."""

    def needs(self) -> frozenset[str]:
        return frozenset()

    def apply(self, ctx: Context, alive: np.ndarray) -> Rejection:
        raise NotImplementedError

    def loosen(self, ctx: Context, reached: np.ndarray) -> str | None:
        """When this filter rejected every sample that ``reached`` it: a parameter value that would let some
        through, and how many, in words (None: no single value does, or the filter has none)."""
        return None

    def _suggest(self, key: str, value: float, passing: int) -> str:
        spec = self.describe().split(":")[0] + ":" + ",".join(
            f"{k}={value if k == key else v}" for k, v in self.params.items()
            if k == key or (v != self.defaults.get(k) and v is not None))
        return f"{spec} would keep {passing:,} of them"

    def describe(self) -> str:
        changed = {k: v for k, v in self.params.items() if v != self.defaults.get(k)}
        text = ",".join(f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in changed.items())
        return self.name + (":" + text if text else "")

    def number(self, key: str, low: float = 0.0, high: float = float("inf")) -> None:
        value = self.params[key]
        if value is None:
            return
        if not isinstance(value, int | float) or not low <= value <= high:
            raise FilterSpecError(f"filter {self.name!r}: {key} must be a number in [{low}, {high}], got {value!r}")


def _where(mask: np.ndarray, alive: np.ndarray) -> np.ndarray:
    return np.flatnonzero(mask & alive)


def _reject(checks: list[tuple[np.ndarray, Callable[[int], str]]], alive: np.ndarray) -> Rejection:
    """Apply checks in order; a sample is rejected by the first that fails, with that check's reason."""
    left = alive.copy()
    rows: list[np.ndarray] = []
    reasons: list[str] = []
    for failed, reason in checks:
        hit = _where(failed, left)
        rows.append(hit)
        reasons += [reason(int(i)) for i in hit]
        left[hit] = False
    return (np.concatenate(rows) if rows else np.zeros(0, np.int64)), reasons


class BasicFilter(Filter):
    """DataComp's basic filter: English caption, > 2 words and > 5 characters, short side and aspect limits."""

    name = "basic"
    defaults = {"lang": "en", "words_gt": 2, "chars_gt": 5, "min_side": 200, "max_aspect": 3.0}

    def check(self) -> None:
        for key in ("words_gt", "chars_gt", "min_side"):
            self.number(key)
        self.number("max_aspect", 1.0)

    def needs(self) -> frozenset[str]:
        return frozenset({"size"} | ({"language"} if self.params["lang"] else set()))

    def apply(self, ctx: Context, alive: np.ndarray) -> Rejection:
        p = self.params
        checks: list[tuple[np.ndarray, Callable[[int], str]]] = []
        if p["lang"]:
            lang = ctx.col("language")
            checks.append((lang != p["lang"], lambda i: f"caption language {lang[i] or 'unknown'}, not {p['lang']}"))
        words, chars = ctx.col("caption_words"), ctx.col("caption_chars")
        checks.append((words <= p["words_gt"], lambda i: f"caption has {words[i]} words (needs > {p['words_gt']})"))
        checks.append((chars <= p["chars_gt"], lambda i: f"caption has {chars[i]} characters (needs > "
                                                          f"{p['chars_gt']})"))
        side, aspect = ctx.short_side(), ctx.aspect()
        checks.append((side < p["min_side"], lambda i: f"short side {side[i]} px < {p['min_side']}"))
        checks.append((aspect > p["max_aspect"], lambda i: f"aspect ratio {aspect[i]:.1f} > {p['max_aspect']}"))
        return _reject(checks, alive)

    def loosen(self, ctx: Context, reached: np.ndarray) -> str | None:
        p, side = self.params, ctx.short_side()
        if reached.any() and (side[reached] < p["min_side"]).all():  # the usual case: images smaller than asked
            largest = int(side[reached].max())
            return self._suggest("min_side", largest, int((side[reached] >= largest).sum()))
        words = ctx.col("caption_words")
        if reached.any() and (words[reached] <= p["words_gt"]).all():
            most = int(words[reached].max())
            return self._suggest("words_gt", max(most - 1, 0), int((words[reached] > most - 1).sum()))
        return None


class ClipScoreFilter(Filter):
    """Image–caption cosine: keep at or above ``min`` (LAION: 0.28 for ViT-B/32) or the ``top`` fraction."""

    name = "clip-score"
    defaults = {"min": None, "top": None}

    def check(self) -> None:
        if (self.params["min"] is None) == (self.params["top"] is None):
            raise FilterSpecError("filter 'clip-score': give exactly one of min=COSINE or top=FRACTION")
        self.number("min", -1.0, 1.0)
        self.number("top", 0.0, 1.0)

    def needs(self) -> frozenset[str]:
        return frozenset({"image_emb", "text_emb"})

    def apply(self, ctx: Context, alive: np.ndarray) -> Rejection:
        score = ctx.col("clip_score")
        missing = np.isnan(score)
        threshold, how = self.params["min"], "below"
        if self.params["top"] is not None:
            # the top fraction of the samples that reach this filter (ties at the threshold are kept)
            valid = score[alive & ~missing]
            keep = int(np.ceil(self.params["top"] * int(alive.sum())))
            threshold = float(np.sort(valid)[::-1][keep - 1]) if keep and len(valid) else np.inf
            how = f"not in the top {self.params['top']:.0%}: below"
        return _reject([(missing, lambda i: "no clip score (image or caption did not embed)"),
                        (score < threshold, lambda i: f"clip score {score[i]:.3f} {how} {threshold:.3f}")], alive)

    def loosen(self, ctx: Context, reached: np.ndarray) -> str | None:
        score = ctx.col("clip_score")[reached]
        if self.params["min"] is None or np.isnan(score).all():
            return None
        best = math.floor(float(np.nanmax(score)) * 1000) / 1000
        return self._suggest("min", best, int((score >= best).sum()))


class TextMatchFilter(Filter):
    """DataComp's text-based filter: keep captions that mention a term of a vocabulary (whole words)."""

    name = "text-match"
    defaults = {"terms": None, "vocab": None}

    def check(self) -> None:
        terms = self.params["terms"]
        if isinstance(terms, str):
            terms = [t for t in terms.split("|")]
        if self.params["vocab"]:
            try:
                terms = (terms or []) + Path(self.params["vocab"]).read_text(encoding="utf-8").splitlines()
            except OSError as e:
                raise FilterSpecError(f"filter 'text-match': cannot read vocab {self.params['vocab']}: {e}") from e
        self.terms = sorted({t.strip().lower() for t in terms or [] if t.strip()})
        if not self.terms:
            raise FilterSpecError("filter 'text-match': give terms=a|b|c or vocab=FILE (one term per line)")
        alternatives = "|".join(re.escape(t) for t in sorted(self.terms, key=len, reverse=True))
        self.pattern = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)

    def apply(self, ctx: Context, alive: np.ndarray) -> Rejection:
        captions = ctx.col("caption")
        miss = np.array([not (c and self.pattern.search(c)) if a else False for c, a in zip(captions, alive,
                                                                                            strict=True)])
        return _reject([(miss, lambda i: f"caption mentions none of the {len(self.terms)} terms")], alive)


_BOILERPLATE = [re.compile(p, re.IGNORECASE) for p in (
    r"^\s*(img|dsc|dscn|pxl|photo|image|screenshot)[_\- ]?\d+", r"\.(jpe?g|png|gif|webp|bmp|tiff?)\s*$",
    r"\bclick (here|to)\b", r"\bstock (photo|image|footage)\b", r"\broyalty[- ]free\b", r"^\s*image may contain\b",
    r"^\s*(untitled|no description|image|photo|picture|thumbnail|placeholder)\s*\.?\s*$",
    r"\bfree shipping\b", r"\b(buy now|add to cart|shop now)\b", r"\bdownload\b.*\b(image|photo|picture)\b")]
_VISUAL_PROMPTS = ("a photo of an object", "a picture of a scene", "an image showing shapes and colours",
                   "a close-up photo of something", "a drawing of things")
_NON_VISUAL_PROMPTS = ("click here to download", "free shipping on all orders", "untitled document",
                       "terms and conditions apply", "IMG_0001.JPG")


# one case-sensitive pass over the lower-cased caption for the common (clean) case: IGNORECASE
# alternations are several times slower; the pattern is named only on a hit
_ANY_BOILERPLATE = re.compile("|".join(f"(?:{p.pattern})" for p in _BOILERPLATE))


def boilerplate_reason(caption: str, max_repeat: float) -> str | None:
    """Why a caption is boilerplate (a pattern, or one token repeated), or None. A heuristic."""
    lowered = caption.lower()
    if _ANY_BOILERPLATE.search(lowered):
        pattern = next(p for p in _BOILERPLATE if p.search(caption))
        return f"boilerplate caption (matches {pattern.pattern!r})"
    tokens = lowered.split()
    if len(tokens) >= 4:
        top = max(Counter(tokens).values()) / len(tokens)
        if top > max_repeat:
            return f"caption repeats one token ({top:.0%} of tokens)"
    return None


class CaptionQualityFilter(Filter):
    """Heuristics: boilerplate / placeholder captions, repeated tokens, and a "visualness" score.

    Visualness = mean cosine of the caption to visual prompts minus to
    non-visual ones (text tower only); rejected below ``min_visual`` when set.
    """

    name = "caption-quality"
    defaults = {"max_repeat": 0.5, "visual": True, "min_visual": None, "prompts": None}

    def check(self) -> None:
        self.number("max_repeat", 0.0, 1.0)
        self.number("min_visual", -2.0, 2.0)
        if self.params["min_visual"] is not None and not self.params["visual"]:
            raise FilterSpecError("filter 'caption-quality': min_visual needs visual=true")

    def needs(self) -> frozenset[str]:
        return frozenset({"text_emb"}) if self.params["visual"] else frozenset()

    def _prompts(self) -> tuple[str, ...]:
        if not self.params["prompts"]:
            return _VISUAL_PROMPTS
        try:
            lines = Path(self.params["prompts"]).read_text(encoding="utf-8").splitlines()
        except OSError as e:
            raise FilterSpecError(f"filter 'caption-quality': cannot read prompts: {e}") from e
        return tuple(line.strip() for line in lines if line.strip())

    def apply(self, ctx: Context, alive: np.ndarray) -> Rejection:
        captions = ctx.col("caption")
        why: dict[int, str] = {}
        for i in np.flatnonzero(alive):
            reason = boilerplate_reason(captions[i], self.params["max_repeat"]) if captions[i] else None
            if reason:
                why[int(i)] = reason
        visual = self._visualness(ctx) if self.params["visual"] else np.full(ctx.n, np.nan, np.float32)
        if self.params["visual"]:
            ctx.extra["visual_score"] = visual
        bad = np.zeros(len(alive), bool)
        bad[list(why)] = True
        checks: list[tuple[np.ndarray, Callable[[int], str]]] = [(bad, lambda i: why[i])]
        if self.params["min_visual"] is not None:
            low = ~(visual >= self.params["min_visual"])
            checks.append((low, lambda i: f"visualness {visual[i]:.3f} < {self.params['min_visual']}"))
        return _reject(checks, alive)

    def _visualness(self, ctx: Context) -> np.ndarray:
        encoder = ctx.encoder()
        ctx.check_dim(encoder, "text")
        visual = encoder.encode_texts(list(self._prompts()))
        plain = encoder.encode_texts(list(_NON_VISUAL_PROMPTS))
        out = np.full(ctx.n, np.nan, np.float32)
        has = ctx.col("has_text_emb")
        for rows in ctx.row_chunks():
            take = rows[has[rows]]
            vec = ctx.text_vectors(take)
            out[take] = (vec @ visual.T).mean(axis=1) - (vec @ plain.T).mean(axis=1)
        return out


class SizeFilter(Filter):
    name = "size"
    defaults = {"min_side": 200, "max_side": None, "min_pixels": None}

    def check(self) -> None:
        for key in self.defaults:
            self.number(key)

    def needs(self) -> frozenset[str]:
        return frozenset({"size"})

    def apply(self, ctx: Context, alive: np.ndarray) -> Rejection:
        p, side = self.params, ctx.short_side()
        long_side = np.maximum(ctx.col("width"), ctx.col("height"))
        pixels = ctx.col("width").astype(np.int64) * ctx.col("height")
        checks: list[tuple[np.ndarray, Callable[[int], str]]] = [
            (side < (p["min_side"] or 0), lambda i: f"short side {side[i]} px < {p['min_side']}")]
        if p["max_side"]:
            checks.append((long_side > p["max_side"], lambda i: f"long side {long_side[i]} px > {p['max_side']}"))
        if p["min_pixels"]:
            checks.append((pixels < p["min_pixels"], lambda i: f"{pixels[i]} pixels < {p['min_pixels']}"))
        return _reject(checks, alive)

    def loosen(self, ctx: Context, reached: np.ndarray) -> str | None:
        side = ctx.short_side()[reached]
        if len(side) and (side < (self.params["min_side"] or 0)).all():
            return self._suggest("min_side", int(side.max()), int((side >= side.max()).sum()))
        return None


class AspectFilter(Filter):
    name = "aspect"
    defaults = {"max": 3.0}

    def check(self) -> None:
        self.number("max", 1.0)

    def needs(self) -> frozenset[str]:
        return frozenset({"size"})

    def apply(self, ctx: Context, alive: np.ndarray) -> Rejection:
        aspect = ctx.aspect()
        return _reject([(aspect > self.params["max"],
                         lambda i: f"aspect ratio {aspect[i]:.1f} > {self.params['max']}")], alive)

    def loosen(self, ctx: Context, reached: np.ndarray) -> str | None:
        aspect = ctx.aspect()[reached]
        finite = aspect[np.isfinite(aspect)]
        if not len(finite):
            return None
        least = math.ceil(float(finite.min()) * 10) / 10
        return self._suggest("max", least, int((aspect <= least).sum()))


class BlankFilter(Filter):
    """Near-constant images: the largest per-channel standard deviation (0-255) of a 32x32 copy."""

    name = "blank"
    defaults = {"max_std": 2.0}

    def check(self) -> None:
        self.number("max_std")

    def needs(self) -> frozenset[str]:
        return frozenset({"pixels"})

    def apply(self, ctx: Context, alive: np.ndarray) -> Rejection:
        std = ctx.col("blank_std")
        return _reject([(std <= self.params["max_std"],
                         lambda i: f"blank image (pixel std {std[i]:.1f} <= {self.params['max_std']})")], alive)

    def loosen(self, ctx: Context, reached: np.ndarray) -> str | None:
        std = ctx.col("blank_std")[reached]
        if not len(std) or np.isnan(std).all():
            return None
        below = round(math.floor(float(np.nanmax(std)) * 10) / 10 - 0.1, 1)
        return self._suggest("max_std", below, int((std > below).sum())) if below >= 0 else None


class DedupFilter(Filter):
    """Exact (content hash) and near duplicates; one per group (connected component) is kept by ``keep``.

    Near duplicates by ``method``: ``embedding`` (image cosine >= ``cos``) or
    ``phash`` (64-bit perceptual hash within ``bits`` Hamming distance).
    """

    name = "dedup"
    defaults = {"mode": "both", "method": "embedding", "cos": 0.95, "bits": 6, "keep": "clip_score"}

    def check(self) -> None:
        if self.params["mode"] not in ("exact", "near", "both"):
            raise FilterSpecError("filter 'dedup': mode must be exact, near or both")
        if self.params["method"] not in ("embedding", "phash"):
            raise FilterSpecError("filter 'dedup': method must be embedding or phash")
        if self.params["keep"] not in dedup.KEEP_RULES:
            raise FilterSpecError(f"filter 'dedup': keep must be one of {', '.join(dedup.KEEP_RULES)}")
        self.number("cos", -1.0, 1.0)
        self.number("bits", 0, 64)

    def needs(self) -> frozenset[str]:
        mode, method = self.params["mode"], self.params["method"]
        near = set() if mode == "exact" else ({"image_emb"} if method == "embedding" else {"pixels"})
        ranking = {"image_emb", "text_emb"} if self.params["keep"] == "clip_score" else set()
        return frozenset(({"bytes"} if mode != "near" else set()) | near | ranking)

    def apply(self, ctx: Context, alive: np.ndarray) -> Rejection:
        """One grouping over every chosen relation, so a chain of copies keeps exactly one sample."""
        p = self.params
        near = None if p["mode"] == "exact" else p["method"]
        dup_of, identical = dedup.duplicate_groups(ctx, alive, p["mode"] != "near", near, p["cos"], int(p["bits"]),
                                                   p["keep"])
        keys = ctx.col("key")
        dup = np.flatnonzero(dup_of >= 0)
        how = np.full(ctx.n, "", dtype=object)
        if near == "embedding":
            sims = dedup.cosine(ctx, dup, dup_of[dup])
            how[dup] = np.array([f" (cos {v:.3f})" for v in sims], dtype=object)
        elif near == "phash":
            hashes = ctx.col("phash")
            pairs = zip(dup, dup_of[dup], strict=True)
            how[dup] = np.array([f" (pHash distance {_bit_distance(hashes[i], hashes[j])})" for i, j in pairs],
                                dtype=object)
        kept_copy = np.full(ctx.n, None, dtype=object)
        kept_copy[dup] = keys[dup_of[dup]]
        ctx.extra["duplicate_of"] = kept_copy
        return _reject([(identical, lambda i: f"exact duplicate of {keys[dup_of[i]]}"),
                        (dup_of >= 0, lambda i: f"near-duplicate of {keys[dup_of[i]]}{how[i]}")], alive)


def _bit_distance(a: str | None, b: str | None) -> int | str:
    if not a or not b:
        return "?"
    return int(np.unpackbits(np.frombuffer(bytes.fromhex(a), np.uint8) ^ np.frombuffer(bytes.fromhex(b), np.uint8))
               .sum())


class DecontaminateFilter(Filter):
    """Drop pool images that are near-duplicates (cosine >= ``cos``) of any image of the evaluation sets."""

    name = "decontaminate"
    defaults = {"eval": None, "cos": 0.95}

    def check(self) -> None:
        if not self.params["eval"]:
            raise FilterSpecError("filter 'decontaminate': give eval=PATH (a folder, table or Karpathy JSON; "
                               "several joined by |)")
        self.number("cos", -1.0, 1.0)

    def needs(self) -> frozenset[str]:
        return frozenset({"image_emb"})

    def apply(self, ctx: Context, alive: np.ndarray) -> Rejection:
        refs, vectors = ctx.target_set(str(self.params["eval"]))
        match, sim = dedup.nearest_in(ctx, alive, vectors)
        hit = alive & (sim >= self.params["cos"])
        ctx.extra["eval_similarity"] = sim
        return _reject([(hit, lambda i: f"near-duplicate of evaluation image {refs[match[i]]} "
                                        f"(cos {sim[i]:.3f})")], alive)


class ImageClusterFilter(Filter):
    """DataComp's image-based filter: k-means over pool images; keep clusters nearest to a target set."""

    name = "image-cluster"
    defaults = {"target": None, "k": None, "seed": 0}

    def check(self) -> None:
        if not self.params["target"]:
            raise FilterSpecError("filter 'image-cluster': give target=PATH (a folder, table or Karpathy JSON)")
        self.number("k", 1)

    def needs(self) -> frozenset[str]:
        return frozenset({"image_emb"})

    def apply(self, ctx: Context, alive: np.ndarray) -> Rejection:
        _, targets = ctx.target_set(str(self.params["target"]))
        cluster, wanted = dedup.target_clusters(ctx, alive, targets, self.params["k"], int(self.params["seed"]))
        ctx.extra["cluster"] = cluster
        outside = ~np.isin(cluster, wanted)
        return _reject([(outside, lambda i: f"cluster {cluster[i]} is not nearest to any target image")], alive)


class WhereFilter(Filter):
    """Keep samples where a predicate over columns holds: ``width >= 300 and language == 'en'``."""

    name = "where"
    defaults = {"expr": None}
    _TERM = re.compile(r"^\s*([\w.]+)\s*(==|!=|>=|<=|>|<)\s*('[^']*'|\"[^\"]*\"|[-+\w.]+)\s*$")
    _OPS: ClassVar[dict[str, Callable[[Any, Any], Any]]] = {
        "==": np.equal, "!=": np.not_equal, ">=": np.greater_equal, "<=": np.less_equal,
        ">": np.greater, "<": np.less}

    def check(self) -> None:
        expr = self.params["expr"]
        if not expr:
            raise FilterSpecError("filter 'where': give an expression such as \"width >= 300 and language == 'en'\"")
        self.terms = []
        for part in re.split(r"\s+and\s+", str(expr)):
            m = self._TERM.match(part)
            if not m:
                raise FilterSpecError(f"filter 'where': cannot read {part.strip()!r}; use COLUMN OP VALUE joined by "
                                   "'and' (OP: == != >= <= > <)")
            column, op, raw = m.groups()
            value: Any = raw[1:-1] if raw[0] in "'\"" else _number(raw)
            self.terms.append((column, op, value))

    def apply(self, ctx: Context, alive: np.ndarray) -> Rejection:
        ok = np.ones(ctx.n, bool)
        for column, op, value in self.terms:
            values = ctx.pool_column(column)
            with np.errstate(invalid="ignore"):
                try:
                    ok &= np.asarray(self._OPS[op](values, value), bool)
                except TypeError as e:
                    raise ClipdexError(f"filter 'where': cannot compare column {column!r} with {value!r}") from e
        return _reject([(~ok, lambda i: f"fails where: {self.params['expr']}")], alive)


class ProbeFilter(Filter):
    """A linear probe (``clipdex probe train``) as a filter: ``probe:NAME>0.5`` keeps samples whose image the
    probe scores above 0.5, ``probe:NAME<0.2`` those below (NAME: a registered probe or a probe's JSON file)."""

    name = "probe"
    defaults = {"probe": None, "min": None, "max": None}

    def check(self) -> None:
        from clipdex.heads import find_head

        p = self.params
        if not p["probe"] or (p["min"] is None) == (p["max"] is None):
            raise FilterSpecError("filter 'probe': write probe:NAME>VALUE or probe:NAME<VALUE "
                                  "(or probe:probe=NAME,min=VALUE)")
        self.number("min", 0.0, 1.0)
        self.number("max", 0.0, 1.0)
        try:
            self.head = find_head(str(p["probe"]))
        except ValueError as e:
            raise FilterSpecError(f"filter 'probe': {e}") from e

    def needs(self) -> frozenset[str]:
        return frozenset({"image_emb"})

    def apply(self, ctx: Context, alive: np.ndarray) -> Rejection:
        has = ctx.col("has_image_emb")
        score = np.full(ctx.n, np.nan, np.float32)
        for rows in ctx.row_chunks():
            take = rows[has[rows]]
            if len(take):
                vectors = ctx.image_vectors(take)
                if vectors.shape[1] != len(self.head.weights):
                    raise ClipdexError(f"filter 'probe': {self.head.name} was trained on {len(self.head.weights)}-d "
                                       f"{self.head.model} vectors, the pool's are {vectors.shape[1]}-d")
                score[take] = self.head.score(vectors)
        ctx.extra[f"probe_{self.head.name}"] = score
        low, high = self.params["min"], self.params["max"]
        fails = ~(score > low) if low is not None else ~(score < high)
        bound = f"<= {low}" if low is not None else f">= {high}"
        return _reject([(np.isnan(score), lambda i: "no image vector for the probe"),
                        (fails, lambda i: f"probe {self.head.name} {score[i]:.3f} {bound}")], alive)


def _number(raw: str) -> Any:
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            continue
    return {"true": True, "false": False}.get(raw.lower(), raw)


FILTERS: dict[str, type[Filter]] = {f.name: f for f in (
    BasicFilter, ClipScoreFilter, ImageClusterFilter, TextMatchFilter, DedupFilter, DecontaminateFilter,
    CaptionQualityFilter, SizeFilter, AspectFilter, BlankFilter, WhereFilter, ProbeFilter)}


def parse_filter(spec: str | dict[str, Any]) -> Filter:
    """``"clip-score:top=0.3"`` (or a TOML table ``{name = "clip-score", top = 0.3}``) to a filter.

    Raises:
        FilterSpecError: unknown filter or parameter, or a bad value.
    """
    if isinstance(spec, dict):
        params = dict(spec)
        name = str(params.pop("name", ""))
    else:
        name, _, rest = spec.partition(":")
        params = _parse_params(name, rest)
    if name not in FILTERS:
        raise FilterSpecError(f"unknown filter {name!r}. Available: {', '.join(FILTERS)}")
    return FILTERS[name](**params)


def _parse_params(name: str, rest: str) -> dict[str, Any]:
    if not rest.strip():
        return {}
    if name == "where":
        return {"expr": rest.removeprefix("expr=")}  # the expression itself may hold commas and '='
    bound = re.match(r"^\s*([^<>=,]+?)\s*([<>])\s*([-+0-9.eE]+)\s*$", rest)
    if name == "probe" and bound:  # probe:NAME>0.5
        ref, op, value = bound.groups()
        return {"probe": ref, ("min" if op == ">" else "max"): _number(value)}
    params = {}
    for part in rest.split(","):
        key, eq, value = part.partition("=")
        if not eq:
            raise FilterSpecError(f"filter {name!r}: expected key=value, got {part!r}")
        params[key.strip()] = _number(value.strip()) if value.strip().lower() != "none" else None
    return params
