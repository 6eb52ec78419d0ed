"""Render the template with copier into a folder: the one call every mlgen path uses."""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import copier
from copier import errors as copier_errors

from mlgen.errors import MlgenError


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def render_template(
    template: Path | str,
    destination: Path,
    data: Mapping[str, Any],
    *,
    defaults: bool = True,
    vcs_ref: str | None = None,
) -> Path:
    """Render ``template`` with ``data`` into ``destination`` (created, or empty).

    copier's notes about untagged or uncommitted local templates are silenced (an
    editable install renders from its own checkout); its errors become
    :class:`MlgenError` with copier's message on one line.
    """
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore", copier_errors.DirtyLocalWarning)
            copier.run_copy(
                str(template),
                destination,
                dict(data),
                vcs_ref=vcs_ref,
                defaults=defaults,
                unsafe=True,
                quiet=True,
                overwrite=True,
            )
    except MlgenError:
        raise
    except (copier_errors.CopierError, ValueError) as error:
        raise MlgenError(" ".join(str(error).split()) or type(error).__name__) from error
    except OSError as error:  # disk full, permissions, ...: one line, nothing left behind
        raise MlgenError(f"could not write {destination}: {error.strerror or error}") from error
    destination.chmod(0o777 & ~_current_umask())
    return destination
