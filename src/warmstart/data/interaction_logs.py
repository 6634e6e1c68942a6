"""Interaction logs → bundles: validation, RecBole-style splits, side features, and the two kinds of bundle.

A log is one row per (user, item) with an optional rating and timestamp; side tables hold one row per user or
item. ``build_bundle`` checks the log (duplicated pairs, ratings outside a stated range), filters it, splits
it, and returns either the interactions themselves (``rank``, or ``rate`` with ``--task rate``) or, with
``target=user:COL`` / ``item:COL``, one row per user or item labelled by that side column (``classify`` or
``regress`` on the pretrained embeddings; the column is withheld from the side features).

Splits follow RecBole's defaults: ``split=user`` (random 80/10/10 of each user's interactions, at least one
in training), ``split=global`` (random 80/10/10 of all) or ``split=loo`` (leave-one-out by timestamp: each
user's last interaction is test, the one before it validation). ``holdout=test`` makes the test part the
bundle's test split, ``holdout=valid`` the validation part (for choices); the training part is the same in
both, and the other held-out part is never used. Splits are fixed (seed 0), whatever the run's seed.
The options' names, allowed values and parsing are in ``log_options.py``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from warmstart.data.bundle import DataBundle
from warmstart.data.interactions import Catalog
from warmstart.data.log_options import DUPLICATES, HOLDOUTS, SPLITS, option_choice, option_number, ratios
from warmstart.data.splits import fixed_split
from warmstart.data.targets import infer_targets
from warmstart.errors import UserError, note

#: String side columns with more levels than this are not one-hot encoded (ids, zip codes, titles).
MAX_LEVELS = 200


@dataclass
class Log:
    """One row per interaction: raw user and item ids, optional ratings and timestamps, the source line."""

    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray | None
    times: np.ndarray | None
    lines: np.ndarray

    def take(self, keep: np.ndarray) -> Log:
        def pick(column: np.ndarray | None) -> np.ndarray | None:
            return None if column is None else column[keep]

        return Log(self.users[keep], self.items[keep], pick(self.ratings), pick(self.times), self.lines[keep])


@dataclass
class SideTable:
    """Raw side columns of users or items: ``values[column][k]`` belongs to ``ids[k]``; ``multi`` columns hold
    space-separated token lists (e.g. a movie's genres)."""

    ids: list[str]
    values: dict[str, list[str]] = field(default_factory=dict)
    multi: tuple[str, ...] = ()


def check_log(name: str, log: Log, options: dict) -> Log:
    """Refuse ratings outside ``range=LO,HI``; refuse or aggregate duplicated (user, item) pairs."""
    if "range" in options:
        try:
            low, high = (float(v) for v in options["range"].split(","))
        except ValueError:
            raise UserError(f"{name}: range={options['range']!r} must be LO,HI, e.g. range=1,5") from None
        if log.ratings is None:
            raise UserError(f"{name}: range= checks ratings, but there is no rating column; name it with ?rating=COL")
        bad = np.flatnonzero((log.ratings < low) | (log.ratings > high))
        if len(bad):
            raise UserError(f"{name}: rating {log.ratings[bad[0]]:g} on line {log.lines[bad[0]]} is outside the stated "
                            f"range {low:g}..{high:g}; fix or drop that row, or state another range=")
    how = option_choice(name, options, "duplicates", DUPLICATES)
    user_codes = np.unique(log.users, return_inverse=True)[1]
    item_codes, n_items = np.unique(log.items, return_inverse=True)[1], len(np.unique(log.items))
    keys = user_codes.astype(np.int64) * n_items + item_codes
    _, first, inverse, counts = np.unique(keys, return_index=True, return_inverse=True, return_counts=True)
    if counts.max(initial=1) == 1:
        return log
    if how == "error":
        pair = int(np.flatnonzero(counts > 1)[0])
        lines = log.lines[inverse == pair][:2]
        user, item = str(log.users[first[pair]]), str(log.items[first[pair]])
        raise UserError(f"{name}: user {user!r} and item {item!r} appear together on "
                        f"lines {lines[0]} and {lines[1]}; give one row per pair, or aggregate with ?duplicates=last "
                        "(keep the latest) or ?duplicates=mean (average the ratings)")
    order = np.lexsort(((log.times if log.times is not None else log.lines), inverse))
    last = order[np.cumsum(counts) - 1]  # the latest row of each pair (by timestamp, else by line)
    kept = log.take(np.sort(last))
    if how == "mean" and log.ratings is not None:
        means = np.bincount(inverse, weights=log.ratings) / counts
        kept.ratings = means[inverse[np.sort(last)]]
    note(f"{name}: {int((counts > 1).sum())} duplicated (user, item) pairs aggregated "
         f"({'latest row kept' if how == 'last' else 'ratings averaged'}, as ?duplicates={how} asks)")
    return kept


def filter_log(name: str, log: Log, options: dict) -> Log:
    min_rating, min_user = option_number(name, options, "min_rating"), option_number(name, options, "min_user", int)
    if min_rating is not None:
        if log.ratings is None:
            raise UserError(f"{name}: min_rating= needs a rating column; name it with ?rating=COL")
        log = log.take(log.ratings >= min_rating)
    if min_user is not None:
        _, inverse, counts = np.unique(log.users, return_inverse=True, return_counts=True)
        log = log.take(counts[inverse] >= min_user)
    if len(log.users) == 0:
        raise UserError(f"{name}: no interactions left after min_rating/min_user; loosen them")
    return log


def split_parts(name: str, log: Log, user_ids: np.ndarray, options: dict) -> np.ndarray:
    """Per interaction: 0 train, 1 validation, 2 test (seed 0, independent of the run's seed)."""
    kind, shares = option_choice(name, options, "split", SPLITS), ratios(name, options)
    rng = np.random.default_rng(0)
    parts = np.zeros(len(user_ids), np.int64)
    if kind == "global":
        order = rng.permutation(len(user_ids))
        counts = _counts(len(user_ids), shares)
        parts[order[counts[0]:counts[0] + counts[1]]] = 1
        parts[order[counts[0] + counts[1]:]] = 2
        return parts
    if kind == "loo" and log.times is None:
        raise UserError(f"{name}: split=loo orders each user's interactions by time, but there is no timestamp "
                        "column; name it with ?time=COL or use split=user")
    key = log.times if kind == "loo" else rng.random(len(user_ids))
    order = np.lexsort((rng.random(len(user_ids)), key, user_ids))  # by user, then time (or at random)
    sizes = np.bincount(user_ids)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    position = np.arange(len(order)) - starts[user_ids[order]]
    size = sizes[user_ids[order]]
    if kind == "loo":
        part = np.where(position == size - 1, 2, np.where((position == size - 2) & (size >= 3), 1, 0))
        part[size == 1] = 0
    else:
        table = np.array([_counts(n, shares) for n in range(sizes.max() + 1)])
        train, valid = table[size, 0], table[size, 1]
        part = np.where(position < train, 0, np.where(position < train + valid, 1, 2))
    parts[order] = part
    return parts


def _counts(total: int, shares: np.ndarray) -> np.ndarray:
    """RecBole's split sizes: floor of each share, the rest to training; an empty held-out part takes one
    training interaction while training keeps more than one."""
    counts = [int(s * total) for s in shares]
    counts[0] = total - counts[1] - counts[2]
    for i in (1, 2):
        if counts[i] == 0 and shares[i] > 0 and counts[0] > 1:
            counts[0] -= 1
            counts[i] += 1
    return np.array(counts)


def _index(raw: np.ndarray, extra: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct ids (numerically when all are numbers) and each raw value's position among them."""
    ids = np.unique(np.concatenate([raw.astype(str), np.asarray(extra, dtype=str)]))
    try:
        ids = ids[np.argsort(ids.astype(np.float64), kind="stable")]
    except ValueError:
        pass
    lookup = {v: k for k, v in enumerate(ids)}
    return ids, np.array([lookup[v] for v in raw.astype(str)], np.int64)


def encode_side(table: SideTable | None, ids: np.ndarray, withheld: str | None) -> tuple[np.ndarray, list[str]]:
    """``(len(ids), D)`` float32 side features and their names: one-hot levels of string columns, token lists
    multi-hot (each row's tokens share a weight of 1), numbers standardised; ``withheld`` is left out."""
    if table is None:
        return np.zeros((len(ids), 0), np.float32), []
    where = {v: k for k, v in enumerate(table.ids)}
    rows = np.array([where.get(v, -1) for v in ids])
    blocks, names = [], []
    for column, raw in table.values.items():
        if column == withheld:
            continue
        values = [raw[r] if r >= 0 else "" for r in rows]
        tokens = [v.split() if column in table.multi else ([v] if v else []) for v in values]
        numbers = _as_numbers(values)
        if numbers is not None and column not in table.multi:
            std = numbers[np.isfinite(numbers)].std() or 1.0
            filled = np.where(np.isfinite(numbers), numbers, np.nanmean(numbers))
            blocks.append(((filled - np.nanmean(numbers)) / std)[:, None])
            names.append(column)
            continue
        levels = sorted({t for row in tokens for t in row})
        if len(levels) > MAX_LEVELS:
            continue
        block = np.zeros((len(ids), len(levels)))
        at = {t: j for j, t in enumerate(levels)}
        for k, row in enumerate(tokens):
            for t in row:
                block[k, at[t]] = 1.0 / len(row)
        blocks.append(block)
        names += [f"{column}={t}" for t in levels]
    if not blocks:
        return np.zeros((len(ids), 0), np.float32), []
    return np.hstack(blocks).astype(np.float32), names


def _as_numbers(values: list[str]) -> np.ndarray | None:
    try:
        return np.array([float(v) if v != "" else np.nan for v in values])
    except ValueError:
        return None


def build_bundle(name: str, spec: str, log: Log, users: SideTable | None, items: SideTable | None,
                 options: dict) -> DataBundle:
    """Check, filter and split ``log``; the interactions bundle, or the ``target=`` users/items bundle."""
    holdout = option_choice(name, options, "holdout", HOLDOUTS)
    target = _target(name, options.get("target"), users, items)
    log = filter_log(name, check_log(name, log, options), options)
    user_ids, user_index = _index(log.users, users.ids if users else [])
    item_ids, item_index = _index(log.items, items.ids if items else [])
    parts = split_parts(name, log, user_index, options)
    _refuse_empty_users(name, user_ids, user_index, parts, options)
    withheld = {"user": None, "item": None}
    if target is not None:
        withheld[target[0]] = target[1]
    user_x, user_names = encode_side(users, user_ids, withheld["user"])
    item_x, item_names = encode_side(items, item_ids, withheld["item"])
    pairs = np.stack([user_index, item_index], 1)
    train = parts == 0
    catalog = Catalog(name, user_ids, item_ids, pairs[train], user_x, item_x, user_names, item_names,
                      has_ratings=log.ratings is not None)
    if target is not None:
        return _entity_bundle(name, spec, catalog, target, users if target[0] == "user" else items)
    held = parts == (2 if holdout == "test" else 1)
    ratings = (log.ratings if log.ratings is not None else np.ones(len(pairs))).astype(np.float32)[:, None]
    cold = int((~catalog.graph.seen_items[pairs[held, 1]]).sum())
    if cold:
        note(f"{name}: {cold} of {int(held.sum())} {holdout} interactions are on items without a training "
             "interaction; they stay in the full ranking (their embeddings carry no information)")
    why = ("an interaction log; inferred rank (top-K recommendation), --task rate predicts the ratings"
           if log.ratings is not None else "an interaction log without ratings; inferred rank")
    return DataBundle(name, pairs[train], ratings[train], pairs[held], ratings[held], "interactions", task="rank",
                      target_names=["rating"], spec=spec, inferred=why, catalog=catalog)


def _target(name: str, text: str | None, users: SideTable | None, items: SideTable | None):
    if text is None:
        return None
    side, _, column = text.partition(":")
    table = {"user": users, "item": items}.get(side)
    if side not in ("user", "item") or not column:
        raise UserError(f"{name}: target={text!r} must be user:COLUMN or item:COLUMN (a column of the side tables)")
    if table is None or column not in table.values:
        known = ", ".join(f"{side}:{c}" for c in (table.values if table else {})) or f"none (no {side} table)"
        raise UserError(f"{name}: no {side} column '{column}' to predict; choose one of: {known}")
    return side, column


def _refuse_empty_users(name: str, user_ids, user_index, parts, options) -> None:
    in_train = np.bincount(user_index[parts == 0], minlength=len(user_ids)) > 0
    held_out = np.bincount(user_index[parts > 0], minlength=len(user_ids)) > 0
    empty = np.flatnonzero(held_out & ~in_train)
    if len(empty):
        more = f" (and {len(empty) - 1} more)" if len(empty) > 1 else ""
        raise UserError(f"{name}: user {str(user_ids[empty[0]])!r}{more} has no training interaction "
                        f"after split={options.get('split', 'user')}; use split=user (at least one training "
                        "interaction per user) or drop small users with ?min_user=N")


def _entity_bundle(name: str, spec: str, catalog: Catalog, target: tuple[str, str], table: SideTable) -> DataBundle:
    """One row per user (``[u, -1]``) or item (``[-1, i]``) with a value in the target column."""
    side, column = target
    ids = catalog.users if side == "user" else catalog.items
    where = {v: k for k, v in enumerate(table.ids)}
    raw = [table.values[column][where[v]] if v in where else "" for v in ids]
    if column in table.multi:
        raw = [v.split()[0] if v.split() else "" for v in raw]
        note(f"{name}: {side}:{column} holds several values per {side}; predicting the first listed")
    rows = np.array([k for k, v in enumerate(raw) if v.strip()], np.int64)
    task, y, class_names, why = infer_targets([raw[k] for k in rows])
    seen = catalog.graph.seen_users if side == "user" else catalog.graph.seen_items
    unseen = int((~seen[rows]).sum())
    if unseen:
        note(f"{name}: {unseen} of {len(rows)} {side}s have no training interaction; their id embeddings are zero "
             "(only side features, if the encoder uses them, describe them)")
    x = np.stack([rows, np.full(len(rows), -1)] if side == "user" else [np.full(len(rows), -1), rows], 1)
    tr, te = fixed_split(y if task == "classify" else np.zeros(len(y), np.int64))
    return DataBundle(name, x[tr], y[tr], x[te], y[te], "interactions", class_names, task=task,
                      target_names=[f"{side}:{column}"] if task == "regress" else [], spec=spec,
                      inferred=f"{side}:{column}: {why}", catalog=catalog)
