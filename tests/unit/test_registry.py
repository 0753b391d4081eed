from __future__ import annotations

import pytest

from compressbench.infra.registry import Registry, UnknownNameError


def test_register_get_names():
    reg: Registry[int] = Registry("widget")
    reg.register("b")(2)
    reg.register("a")(1)
    assert reg.get("a") == 1 and reg["b"] == 2
    assert reg.names() == ["a", "b"] and "a" in reg and len(reg) == 2


def test_duplicate_name_is_an_error():
    reg: Registry[int] = Registry("widget")
    reg.register("a")(1)
    with pytest.raises(ValueError, match="already registered"):
        reg.register("a")(2)


def test_unknown_name_lists_valid_ones():
    reg: Registry[int] = Registry("widget")
    reg.register("alpha")(1)
    reg.register("beta")(2)
    with pytest.raises(UnknownNameError) as e:
        reg.get("gamma")
    assert str(e.value) == "unknown widget 'gamma'; valid widgets: alpha, beta"
    assert isinstance(e.value, KeyError)
