"""What a suspect kind is (attribcheck.models.kinds keeps the registry of them): a module of
its own, so the built-in kinds and the registry both import it and not each other."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Optional

if TYPE_CHECKING:
    from pydantic import BaseModel


@dataclass(frozen=True)
class SuspectKind:
    name: str
    # open(spec, protocol, runtime) -> a Generator (attribcheck.models.generator)
    open: Callable[..., Any]
    # identity(spec) -> a JSON-able dict of what decides the images; None: never cached
    identity: Optional[Callable[..., dict]] = None
    # a pydantic model validating the suspect's `options` table (None: the kind takes none)
    options: Optional[type[BaseModel]] = None
    needs_path: bool = True  # whether `path` must name an existing file or folder
    # whether answers come in batches (a model) or one request each (an API): early stopping
    # asks an unbatched kind key by key, so it can stop within a round
    batched: bool = True
    description: str = ""
