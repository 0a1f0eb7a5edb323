"""
The public API: what ``typed_async_client`` and ``typed_async_client.testing`` export, how the
exported objects present themselves, and the ``py.typed`` marker.
"""

from __future__ import annotations
import __future__

import importlib.resources
import inspect
import types

import pytest

import typed_async_client
import typed_async_client.testing


def _public_names(module: types.ModuleType) -> set[str]:
    """Names a user can import from ``module``, minus submodules and ``__future__`` flags."""
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not isinstance(value, (types.ModuleType, __future__._Feature))
    }


@pytest.mark.parametrize(
    "module", [typed_async_client, typed_async_client.testing], ids=lambda m: m.__name__
)
def test_all_is_sorted_and_unique(module: types.ModuleType) -> None:
    """__all__ is sorted and lists each name once."""
    assert sorted(set(module.__all__)) == list(module.__all__)


@pytest.mark.parametrize(
    "module", [typed_async_client, typed_async_client.testing], ids=lambda m: m.__name__
)
def test_all_is_complete(module: types.ModuleType) -> None:
    """Every public name of the module is in __all__, and every name in __all__ exists."""
    assert _public_names(module) == set(module.__all__)
    assert [] == [name for name in module.__all__ if not hasattr(module, name)]


def test_exported_classes_and_functions_report_the_public_module() -> None:
    """Classes and functions exported by the package say they come from typed_async_client."""
    ours = {
        name: obj
        for name in typed_async_client.__all__
        if inspect.isclass(obj := getattr(typed_async_client, name)) or inspect.isfunction(obj)
    }
    assert {"AsyncResilientClient", "RequestContext", "backoff_delay", "current_context"} <= set(
        ours
    )
    assert dict.fromkeys(ours, "typed_async_client") == {
        name: obj.__module__ for name, obj in ours.items()
    }


def test_testing_exports_the_server_helpers() -> None:
    """The testing module exports the server, its request record and the two helpers."""
    assert [
        "FaultMix",
        "LocalServer",
        "RecordedRequest",
        "instant_retries",
        "refusing_url",
    ] == typed_async_client.testing.__all__


def test_version_is_a_string() -> None:
    """The package has a __version__ string."""
    assert isinstance(typed_async_client.__version__, str)
    assert typed_async_client.__version__


def test_py_typed_is_shipped() -> None:
    """The package ships the PEP 561 py.typed marker."""
    marker = importlib.resources.files("typed_async_client").joinpath("py.typed")
    assert marker.is_file()
