"""Moving aliases safely: compare-and-set promotion, manual promotion, rollback.

Aliases: ``champion`` serves, ``previous-champion`` is where rollback goes,
``challenger`` is the last version that passed the absolute gates but lost to
the champion. Every move records who, why and when as model-version tags.
"""

from __future__ import annotations

import getpass
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from components import vocabulary as v
from components.release import registry
from components.vocabulary import ALIAS_CHALLENGER as CHALLENGER
from components.vocabulary import ALIAS_CHAMPION as CHAMPION
from components.vocabulary import ALIAS_PREVIOUS as PREVIOUS

log = logging.getLogger(__name__)


class PromotionError(RuntimeError):
    """A manual promotion or rollback cannot be done; the message says why."""


@dataclass(frozen=True)
class PromotionOutcome:
    promoted: bool
    reason: str
    champion: str | None  # the champion after the attempt
    previous: str | None


@contextmanager
def registry_lock(lock_dir: str | Path, timeout: float = 120.0) -> Iterator[None]:
    """Serialise alias moves between processes sharing this project (and its registry)."""
    from filelock import FileLock

    Path(lock_dir).mkdir(parents=True, exist_ok=True)
    with FileLock(str(Path(lock_dir) / "registry.lock"), timeout=timeout):
        yield


def _stamp(action: str, reason: str) -> dict[str, str]:
    return {
        f"{action}.by": getpass.getuser(),
        f"{action}.at": datetime.now(UTC).isoformat(timespec="seconds"),
        f"{action}.reason": reason[:500],
    }


def _move_champion(name: str, new: str, current: str | None, alias: str = CHAMPION) -> None:
    """Point previous-champion at the old champion first: a crash in between leaves champion untouched.

    The old champion stops saying `decision=promote` once it no longer holds the alias.
    """
    if current is not None and current != new:
        registry.set_alias(name, PREVIOUS, current)
    registry.set_alias(name, alias, new)
    if current is not None and current != new:
        replaced = {v.TAG_DECISION: v.DECISION_REPLACED, v.TAG_DECISION_REASON: f"replaced by v{new} as @{alias}"}
        registry.set_version_tags(name, current, replaced)
    if registry.alias_version(name, CHALLENGER) == new:
        registry.delete_alias(name, CHALLENGER)


def compare_and_set_champion(
    name: str, version: str, *, expected: str | None, reason: str, lock_dir: str | Path, alias: str = CHAMPION
) -> PromotionOutcome:
    """Promote ``version`` to ``alias`` (promote.alias) only if it still points at ``expected``
    (what the gate compared against)."""
    with registry_lock(lock_dir):
        current = registry.alias_version(name, alias)
        if current != expected:
            why = (
                f"champion changed during evaluation (was {expected or 'none'}, now {current}); "
                f"not promoting blindly: re-run to evaluate against the new champion"
            )
            registry.set_version_tags(name, version, {"promotion.skipped": why})
            log.warning("version %s: %s", version, why)
            return PromotionOutcome(False, why, current, registry.alias_version(name, PREVIOUS))
        _move_champion(name, version, current, alias)
        registry.set_version_tags(name, version, _stamp("promotion", reason))
    log.info("%s v%s is now @%s (previous: %s)", name, version, alias, current)
    return PromotionOutcome(True, reason, version, current)


def mark_challenger(name: str, version: str, *, lock_dir: str | Path) -> None:
    with registry_lock(lock_dir):
        registry.set_alias(name, CHALLENGER, version)


def promote_manually(
    name: str, version: str, *, reason: str, lock_dir: str | Path, alias: str = CHAMPION
) -> PromotionOutcome:
    """A deliberate promotion to ``alias`` (promote.alias) by a person; needs a reason, recorded on the version."""
    if not reason.strip():
        raise PromotionError("a manual promotion needs --reason")
    with registry_lock(lock_dir):
        versions = {row["version"] for row in registry.list_versions(name)}
        if version not in versions:
            raise PromotionError(
                f"'{name}' has no version {version} (versions: {', '.join(sorted(versions, key=int))})"
            )
        current = registry.alias_version(name, alias)
        if current == version:
            raise PromotionError(f"version {version} is already @{alias}")
        _move_champion(name, version, current, alias)
        promoted = {v.TAG_DECISION: v.DECISION_PROMOTE, v.TAG_DECISION_REASON: f"promoted by hand: {reason}"[:500]}
        registry.set_version_tags(name, version, _stamp("manual_promotion", reason) | promoted)
    return PromotionOutcome(True, reason, version, current)


def rollback(name: str, *, reason: str, lock_dir: str | Path, alias: str = CHAMPION) -> PromotionOutcome:
    """``alias`` (promote.alias) goes back to previous-champion; the rolled-back version keeps a record of why."""
    with registry_lock(lock_dir):
        current = registry.alias_version(name, alias)
        previous = registry.alias_version(name, PREVIOUS)
        if previous is None:
            raise PromotionError(f"'{name}' has no @{PREVIOUS}: nothing to roll back to")
        registry.set_alias(name, alias, previous)
        registry.delete_alias(name, PREVIOUS)
        if current is not None:
            why = f"rolled back: {reason}"[:500]
            rolled_back = {v.TAG_DECISION: v.DECISION_ROLLED_BACK, v.TAG_DECISION_REASON: why}
            registry.set_version_tags(name, current, _stamp("rolled_back", reason) | rolled_back)
        restored = {v.TAG_DECISION: v.DECISION_PROMOTE, v.TAG_DECISION_REASON: f"restored by rollback: {reason}"[:500]}
        registry.set_version_tags(name, previous, _stamp("restored", reason) | restored)
    log.info("rolled back %s: @%s %s -> %s", name, alias, current, previous)
    return PromotionOutcome(True, reason, previous, None)
