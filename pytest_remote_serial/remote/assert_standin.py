"""The helpers pytest's assertion rewriting makes code call (``@pytest_ar``), stdlib-only: code
shipped as bytecode from a test module runs on a target without pytest, and a failing assert
still says what it compared.

Both ends import this module: the host's capsule names ``pytest_rewrite_standin`` in place of
pytest's own module.
"""

from __future__ import annotations


class _PytestRewriteStandin:
    """The helpers pytest's assertion rewriting makes code call (``@pytest_ar``), stdlib-only:
    code shipped as bytecode from a test module runs here without pytest, and a failing
    assert still says what it compared."""

    __name__ = "_pytest.assertion.rewrite"

    @staticmethod
    def _saferepr(obj):
        import reprlib

        if hasattr(obj, "__func__") and hasattr(obj, "__self__"):
            return obj.__name__
        short = reprlib.Repr()
        short.maxstring = short.maxother = 240
        try:
            return short.repr(obj).replace("\n", "\\n")
        except Exception as exc:
            return "<%s repr raised %s>" % (type(obj).__name__, type(exc).__name__)

    @classmethod
    def _format_assertmsg(cls, obj):
        replaces = [("\n", "\n~"), ("%", "%%")]
        if not isinstance(obj, str):
            obj = cls._saferepr(obj)
            replaces.append(("\\n", "\n~"))
        for old, new in replaces:
            obj = obj.replace(old, new)
        return obj

    @staticmethod
    def _should_repr_global_name(obj):
        if callable(obj):
            return False
        try:
            return not hasattr(obj, "__name__")
        except Exception:
            return True

    @staticmethod
    def _format_boolop(explanations, is_or):
        return ("(" + (" or " if is_or else " and ").join(explanations) + ")").replace("%", "%%")

    @staticmethod
    def _call_reprcompare(ops, results, expls, each_obj):
        i = 0
        for i, res in enumerate(results):  # noqa: B007 - the first failing comparison is the one
            try:
                done = not res
            except Exception:
                done = True
            if done:
                break
        return expls[i]

    @staticmethod
    def _call_assertion_pass(lineno, orig, expl):
        return None

    @staticmethod
    def _check_if_assertion_pass_impl():
        return False

    @staticmethod
    def _format_explanation(explanation):
        """pytest's util.format_explanation: ``\\n{``, ``\\n}``, ``\\n~`` nest 'where' lines."""
        raw = (explanation or "").split("\n")
        lines = [raw[0]]
        for values in raw[1:]:
            if values and values[0] in "{}~>":
                lines.append(values)
            else:
                lines[-1] += "\\n" + values
        result, stack, stackcnt = lines[:1], [0], [0]
        for line in lines[1:]:
            if line.startswith("{"):
                s = "and   " if stackcnt[-1] else "where "
                stack.append(len(result))
                stackcnt[-1] += 1
                stackcnt.append(0)
                result.append(" +" + "  " * (len(stack) - 1) + s + line[1:])
            elif line.startswith("}"):
                stack.pop()
                stackcnt.pop()
                result[stack[-1]] += line[1:]
            else:
                stack[-1] += 1
                indent = len(stack) if line.startswith("~") else len(stack) - 1
                result.append("  " * indent + line[1:])
        return "\n".join(result)


def pytest_rewrite_standin():
    return _PytestRewriteStandin


# What a payload may name in this module (see payloads.HostNames).
PAYLOAD_API = frozenset(("pytest_rewrite_standin",))
