"""Loading policy modules: files and dotted names, checked before they run (policy/loader.py)."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from mailwright.policy import API_VERSION, Policy, PolicyLoadError
from mailwright.policy.loader import load_policies, load_policy, policy_from


def _write(tmp_path: Path, text: str, name: str = "policy_file.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def _load_error(path: Path) -> PolicyLoadError:
    with pytest.raises(PolicyLoadError) as caught:
        load_policy(str(path))
    return caught.value


class TestHooks:
    """Which attributes become hooks."""

    def test_module_functions_named_for_stages_are_hooks(self, tmp_path: Path) -> None:
        """on_rcpt and an async on_message are picked up; other functions are not."""
        path = _write(
            tmp_path,
            """
            def helper(x):
                return x

            def on_rcpt(rcpt):
                return None

            async def on_message(message):
                return None
            """,
        )

        policy = load_policy(str(path))

        assert policy.name == str(path)
        assert sorted(policy.hooks) == ["on_message", "on_rcpt"]
        assert not policy.needs_authentication

    def test_a_hook_set_to_none_is_left_out(self, tmp_path: Path) -> None:
        """``on_rcpt = None`` switches a hook off without an error."""
        path = _write(tmp_path, "on_rcpt = None\n")

        assert load_policy(str(path)).hooks == {}

    def test_needs_authentication_is_read(self, tmp_path: Path) -> None:
        """``NEEDS_AUTHENTICATION = True`` asks the MTA for SPF, DKIM, ARC and DMARC."""
        path = _write(tmp_path, "NEEDS_AUTHENTICATION = True\ndef on_message(m):\n    pass\n")

        assert load_policy(str(path)).needs_authentication

    def test_a_module_may_use_dataclasses(self, tmp_path: Path) -> None:
        """The module is registered while it runs, which dataclasses need to resolve fields."""
        path = _write(
            tmp_path,
            """
            from __future__ import annotations
            from dataclasses import dataclass
            from typing import ClassVar

            @dataclass
            class Counter:
                seen: int = 0
                limit: ClassVar[int] = 3

            COUNTER = Counter()

            def on_rcpt(rcpt):
                COUNTER.seen += 1
            """,
        )

        assert list(load_policy(str(path)).hooks) == ["on_rcpt"]


class TestPolicyObject:
    """``policy = Object()``: the object's methods are the hooks."""

    def test_methods_of_the_policy_object_are_hooks(self, tmp_path: Path) -> None:
        """A class-based policy: bound methods with one argument besides self."""
        path = _write(
            tmp_path,
            """
            class Tagger:
                API_VERSION = 1
                NEEDS_AUTHENTICATION = True

                def __init__(self, tag):
                    self.tag = tag

                def on_message(self, message):
                    message.metadata["tag"] = self.tag

            policy = Tagger("blue")
            """,
        )

        policy = load_policy(str(path))

        assert list(policy.hooks) == ["on_message"]
        assert policy.hooks["on_message"].__self__.tag == "blue"  # type: ignore[attr-defined]
        assert policy.needs_authentication

    def test_policy_bound_to_a_module_is_not_a_policy_object(self, tmp_path: Path) -> None:
        """``from mailwright import policy`` must not hide the module's own hooks."""
        path = _write(
            tmp_path,
            """
            from mailwright import policy

            def on_rcpt(rcpt):
                return policy.reject("no")
            """,
        )

        assert list(load_policy(str(path)).hooks) == ["on_rcpt"]

    def test_both_a_policy_object_and_top_level_hooks_is_an_error(self, tmp_path: Path) -> None:
        """One set of hooks would be ignored silently, so loading refuses the module."""
        path = _write(
            tmp_path,
            """
            class P:
                def on_rcpt(self, rcpt):
                    return None

            def on_mail(transaction):
                return None

            policy = P()
            """,
        )

        error = _load_error(path)

        assert error.line == 8
        assert "defines both" in error.detail
        assert "on_mail" in error.detail

    def test_policy_from_an_object_directly(self) -> None:
        """Built-ins are objects, not files: policy_from names them as given."""

        class Builtin:
            def on_connect(self, connection: object) -> None:
                return None

        policy = policy_from("builtin:test", Builtin())

        assert policy.name == "builtin:test"
        assert list(policy.hooks) == ["on_connect"]


class TestErrors:
    """Every fault names the file, the line when known, and what is wrong."""

    def test_an_unknown_hook_name_is_an_error_with_its_line(self, tmp_path: Path) -> None:
        """A typo such as on_rcpt_to would otherwise disable a check silently."""
        path = _write(
            tmp_path,
            """
            import os

            def on_rcpt_to(rcpt):
                return None
            """,
        )

        error = _load_error(path)

        assert error.source == str(path)
        assert error.line == 3
        assert "unknown hook 'on_rcpt_to'" in error.detail
        assert "on_rcpt" in error.detail  # the known names are listed
        assert str(error).startswith(f"{path}:3: unknown hook")

    @pytest.mark.parametrize(
        "definition",
        [
            "def on_rcpt():\n    pass\n",
            "def on_rcpt(rcpt, extra):\n    pass\n",
            "def on_rcpt(*, rcpt):\n    pass\n",
        ],
    )
    def test_a_hook_that_cannot_take_one_argument_is_an_error(
        self, tmp_path: Path, definition: str
    ) -> None:
        """Every hook is called with exactly one positional argument, the context."""
        path = _write(tmp_path, "API_VERSION = 1\n\n" + definition)

        error = _load_error(path)

        assert error.line == 3
        assert "must take exactly one argument" in error.detail

    def test_optional_extra_parameters_are_allowed(self, tmp_path: Path) -> None:
        """A hook with defaults after the context can still be called with one argument."""
        path = _write(tmp_path, "def on_rcpt(rcpt, limit=3, *rest):\n    pass\n")

        assert list(load_policy(str(path)).hooks) == ["on_rcpt"]

    def test_a_hook_that_is_not_callable_is_an_error(self, tmp_path: Path) -> None:
        """``on_rcpt = 3`` is refused."""
        path = _write(tmp_path, "on_rcpt = 3\n")

        assert "on_rcpt is not a function" in _load_error(path).detail

    def test_a_syntax_error_names_its_line(self, tmp_path: Path) -> None:
        """The line of the syntax error is in the message, as ``FILE:LINE:``."""
        path = _write(tmp_path, "API_VERSION = 1\n\ndef on_rcpt(rcpt)\n    return None\n")

        error = _load_error(path)

        assert error.line == 3
        assert str(error).startswith(f"{path}:3: syntax error:")

    def test_an_exception_at_import_names_its_line(self, tmp_path: Path) -> None:
        """A module that raises while it runs is reported with the failing line."""
        path = _write(tmp_path, "X = 1\nLIMIT = int('many')\n")

        error = _load_error(path)

        assert error.line == 2
        assert "fails on import: ValueError: invalid literal" in error.detail

    def test_sys_exit_at_import_is_a_load_error(self, tmp_path: Path) -> None:
        """SystemExit at import must not stop the server that is (re)loading the module."""
        path = _write(tmp_path, "import sys\nsys.exit(3)\n")

        error = _load_error(path)

        assert error.line == 2
        assert "SystemExit" in error.detail

    def test_a_missing_file_is_an_error(self, tmp_path: Path) -> None:
        """No such file is said plainly."""
        error = _load_error(tmp_path / "gone.py")

        assert str(error) == f"{tmp_path / 'gone.py'}: no such file"

    def test_a_missing_file_opened_by_the_module_is_not_no_such_file(self, tmp_path: Path) -> None:
        """A FileNotFoundError raised by the module's own code is an import failure."""
        path = _write(tmp_path, "open('/nonexistent/allow-list.txt')\n")

        error = _load_error(path)

        assert "fails on import: FileNotFoundError" in error.detail
        assert error.line == 1

    @pytest.mark.parametrize("version", ["2", "'1'", "True", "None"])
    def test_an_unsupported_api_version_is_an_error_with_its_line(
        self, tmp_path: Path, version: str
    ) -> None:
        """API_VERSION must be one this mailwright offers (True is not 1)."""
        path = _write(tmp_path, f"import os\nAPI_VERSION = {version}\n")

        error = _load_error(path)

        assert error.line == 2
        assert f"API_VERSION {eval(version)!r} is not supported" in error.detail

    def test_the_current_api_version_is_accepted(self, tmp_path: Path) -> None:
        """A module stating API_VERSION = 1 loads."""
        path = _write(tmp_path, f"API_VERSION = {API_VERSION}\n")

        assert load_policy(str(path)) == Policy(str(path), {}, False)


class TestReload:
    """Loading again re-reads the file; dotted modules are re-imported."""

    def test_loading_a_changed_file_again_gets_the_new_hooks(self, tmp_path: Path) -> None:
        """Every load executes the file afresh under a new module name."""
        path = _write(tmp_path, "def on_rcpt(rcpt):\n    return 'old'\n")
        first = load_policy(str(path))
        path.write_text("def on_rcpt(rcpt):\n    return 'new'\n\ndef on_mail(t):\n    pass\n")

        second = load_policy(str(path))

        assert first.hooks["on_rcpt"](None) == "old"
        assert second.hooks["on_rcpt"](None) == "new"
        assert sorted(second.hooks) == ["on_mail", "on_rcpt"]

    def test_a_dotted_module_is_imported_then_reloaded(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A module on sys.path is imported by name; loading it again reloads it."""
        monkeypatch.syspath_prepend(str(tmp_path))
        module = tmp_path / "mw_test_policy_dotted.py"
        module.write_text("def on_rcpt(rcpt):\n    return 1\n")
        first = load_policy("mw_test_policy_dotted")
        module.write_text("def on_rcpt(rcpt):\n    return 2\n")
        # Make sure the reload sees a newer file than the cached bytecode.
        stat = module.stat()
        os.utime(module, (stat.st_atime, stat.st_mtime + 5))

        second = load_policy("mw_test_policy_dotted")

        assert first.hooks["on_rcpt"](None) == 1
        assert second.hooks["on_rcpt"](None) == 2

    def test_an_unknown_dotted_module_is_an_error(self) -> None:
        """A module that cannot be found says so."""
        with pytest.raises(PolicyLoadError, match="cannot be imported"):
            load_policy("mw_no_such_policy_module")

    def test_load_policies_keeps_the_configured_order(self, tmp_path: Path) -> None:
        """Policies come back in the order listed; the first fault stops the load."""
        first = _write(tmp_path, "def on_rcpt(r):\n    pass\n", "first.py")
        second = _write(tmp_path, "def on_mail(t):\n    pass\n", "second.py")
        broken = _write(tmp_path, "def on_mail(:\n", "broken.py")

        loaded = load_policies([str(first), str(second)])

        assert [policy.name for policy in loaded] == [str(first), str(second)]
        with pytest.raises(PolicyLoadError, match=r"broken\.py:1: syntax error"):
            load_policies([str(first), str(broken)])
